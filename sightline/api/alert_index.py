"""The alerts the review page lists: every alert with evidence in the store, plus the recent ones
the tail has seen whose evidence is not there yet, each with its evidence status and verdict.

Finished evidence records do not change, so each is read from the store once and kept; only
pending ones are read again. The store's listing is the truth for what still exists (the
retention sweep deletes old alerts).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from sightline.api.tail import TailState
from sightline.evidence.record import EvidenceRecord, load_record
from sightline.evidence.store import EvidenceStore
from sightline.review.verdicts import VerdictView


@dataclass(frozen=True)
class AlertFilter:
    camera: str | None = None
    type: str | None = None
    since_ns: int | None = None
    until_ns: int | None = None
    limit: int = 100

    def keeps(self, alert: dict[str, Any]) -> bool:
        created = alert["created_ns"]
        return (
            (not self.camera or alert["camera_id"] == self.camera)
            and (not self.type or alert["type"] == self.type)
            and (self.since_ns is None or created >= self.since_ns)
            and (self.until_ns is None or created <= self.until_ns)
        )


def evidence_summary(record: EvidenceRecord | None) -> dict[str, Any]:
    """Overall status and each part's status: what the page needs to show a thumbnail or a player."""
    if record is None:
        return {"status": "pending", "snapshot": "pending", "clip": "pending"}
    return {"status": record.status, **{part: state.status for part, state in record.parts.items()}}


class AlertIndex:
    def __init__(self, store: EvidenceStore, tail: TailState, verdicts: VerdictView, recent: int) -> None:
        self.store, self.tail, self.verdicts, self.recent = store, tail, verdicts, recent
        self.lock = threading.Lock()
        self.finished: dict[str, EvidenceRecord] = {}

    def _records(self) -> dict[str, EvidenceRecord]:
        ids = self.store.alert_ids()
        out: dict[str, EvidenceRecord] = {}
        for alert_id in ids:
            with self.lock:
                record = self.finished.get(alert_id)
            if record is None:
                try:
                    record = load_record(self.store, alert_id)
                except ValueError:  # a record being replaced, or not ours: skip it this time
                    continue
                if record is None:
                    continue
                if record.status != "pending":
                    with self.lock:
                        self.finished[alert_id] = record
            out[alert_id] = record
        with self.lock:  # forget what the retention sweep deleted
            for gone in set(self.finished) - set(ids):
                del self.finished[gone]
        return out

    def item(self, alert: dict[str, Any], record: EvidenceRecord | None) -> dict[str, Any]:
        verdict = self.verdicts.get(alert["alert_id"])
        return {
            "alert": alert,
            "evidence": evidence_summary(record),
            "verdict": verdict.model_dump() if verdict is not None else None,
        }

    def list(self, query: AlertFilter) -> dict[str, Any]:
        """Newest first (by `created_ns`), filtered; and the cameras and types there are, for the filters."""
        records = self._records()
        alerts = {alert_id: record.alert for alert_id, record in records.items()}
        for _seq, alert in self.tail.recent_alerts(limit=self.recent):
            alerts.setdefault(alert["alert_id"], alert)
        kept = sorted((a for a in alerts.values() if query.keeps(a)), key=lambda a: -a["created_ns"])
        return {
            "alerts": [self.item(a, records.get(a["alert_id"])) for a in kept[: query.limit]],
            "cameras": sorted({a["camera_id"] for a in alerts.values()}),
            "types": sorted({a["type"] for a in alerts.values()}),
            "total": len(kept),
        }
