"""The pure parts of `sightline bench evidence`: which alerts count, their evidence latencies,
what is missing or doubled, and CPU per second of clip. Tested without a broker or a chain."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from schemas.alert import AlertRecord
from sightline.evidence.record import EvidenceRecord

NS = 1_000_000_000


@dataclass
class StoreSeen:
    """Every version of each stored part the benchmark saw, by (alert id, file) -> inodes.

    Writes are renames into place, so a part rendered a second time shows as a new inode."""

    inodes: dict[tuple[str, str], set[int]] = field(default_factory=lambda: defaultdict(set))

    def saw(self, alert_id: str, name: str, inode: int) -> None:
        self.inodes[(alert_id, name)].add(inode)

    def rerendered(self) -> set[str]:
        return {alert_id for (alert_id, _), seen in self.inodes.items() if len(seen) > 1}


def percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 3) if values else None


def logical_key(alert: AlertRecord) -> tuple[Any, ...]:
    """What makes two alert records the same alert, whatever their ids."""
    return (alert.camera_id, alert.type, alert.rule, alert.window.start_ns, alert.window.end_ns)


def summarize(
    alerts: Iterable[AlertRecord],
    records: Mapping[str, EvidenceRecord | None],
    seen: StoreSeen,
    start_ns: int,
    end_ns: int,
) -> dict[str, Any]:
    """Over the alerts created in [start_ns, end_ns) (first copy per id): latency from the alert's
    `created_ns` to each part's `stored_ns`; `missing`: no record, or a record that is not
    complete (a part missing, partial or still pending); `duplicates`: a part rendered twice, or
    one alert (camera, type, rule, window) under two ids, each with evidence of its own."""
    measured: dict[str, AlertRecord] = {}
    for alert in alerts:
        if start_ns <= alert.created_ns < end_ns:
            measured.setdefault(alert.alert_id, alert)
    latency: dict[str, list[float]] = {"snapshot": [], "clip": []}
    missing: list[str] = []
    for alert_id, alert in measured.items():
        record = records.get(alert_id)
        if record is None or record.status != "complete":
            missing.append(alert_id)
        for part, values in latency.items():
            stored = record.parts[part].stored_ns if record is not None else None
            if stored is not None:
                values.append((stored - alert.created_ns) / NS)
    with_evidence = [a for a in measured.values() if records.get(a.alert_id) is not None]
    twins = sum(n - 1 for n in Counter(logical_key(a) for a in with_evidence).values() if n > 1)
    rerendered = seen.rerendered() & set(measured)
    return {
        "alerts": len(measured),
        "snapshot_p50_s": percentile(latency["snapshot"], 50),
        "snapshot_p99_s": percentile(latency["snapshot"], 99),
        "clip_p50_s": percentile(latency["clip"], 50),
        "clip_p99_s": percentile(latency["clip"], 99),
        "missing": len(missing),
        "duplicates": twins + len(rerendered),
        "missing_ids": sorted(missing),
    }


def after_arrival(
    records: Mapping[str, EvidenceRecord | None],
    arrived: Mapping[str, int],
    alerts: Iterable[str],
    part: str,
) -> list[float]:
    """Seconds from each alert readable on the alerts topic to its part stored: the evidence
    process's own delay, without the chain's before it (the alert's lateness)."""
    out = []
    for alert_id in alerts:
        record = records.get(alert_id)
        stored = record.parts[part].stored_ns if record is not None else None  # type: ignore[index]
        if stored is not None and alert_id in arrived:
            out.append((stored - arrived[alert_id]) / NS)
    return out


def clip_seconds_stored(records: Iterable[EvidenceRecord], start_ns: int, end_ns: int) -> float:
    """Seconds of clip stored in [start_ns, end_ns), whichever alert they belong to."""
    total = 0.0
    for record in records:
        clip = record.parts["clip"]
        if clip.stored_ns is not None and start_ns <= clip.stored_ns < end_ns:
            total += clip.duration_s or 0.0
    return total


def cpu_ms_per_clip_second(cpu_s: float, clip_s: float) -> float | None:
    return round(1000 * cpu_s / clip_s, 1) if clip_s > 0 else None
