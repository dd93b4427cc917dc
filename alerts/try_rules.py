""" "What would this have raised?": a draft rules document over a camera's recent detections.

The camera's committed detections records of the last N minutes (by record timestamp) are read
from the detections topic, partition by partition in offset order, and fed to the engine behind
`sightline alerts test-rules` twice: once with the draft, once with the rules in force. Nothing is
published and no state is touched: the live processors never see a draft.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from alerts.replay_rules import evaluate
from alerts.settings import RulesSettings
from schemas.alert import AlertRecord
from schemas.detections import DetectionsRecord
from schemas.errors import ContractError
from streams import topic_reader
from streams.kafka import consumer_config
from streams.settings import KafkaSettings

DEFAULT_MINUTES = 60.0
MAX_MINUTES = 7 * 24 * 60.0


@dataclass
class TryResult:
    camera_id: str
    minutes: float
    records: int
    live_version: int
    draft: list[AlertRecord]
    live: list[AlertRecord]
    invalid: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        def dump(alerts: list[AlertRecord]) -> list[dict[str, Any]]:
            return [a.model_dump(mode="json") for a in alerts]

        return {
            "camera_id": self.camera_id,
            "minutes": self.minutes,
            "records": self.records,
            "live_version": self.live_version,
            "draft": {"alerts": dump(self.draft), "count": len(self.draft)},
            "live": {"alerts": dump(self.live), "count": len(self.live)},
            "invalid_records": len(self.invalid),
        }


def recent_records(
    kafka: KafkaSettings,
    topic: str,
    camera_id: str,
    minutes: float,
    errors: list[str],
    now_ms: int | None = None,
) -> Iterator[DetectionsRecord]:
    """The camera's committed records produced in the last `minutes`, per partition in order."""
    since_ms = (now_ms if now_ms is not None else int(time.time() * 1000)) - int(minutes * 60_000)
    config = consumer_config(kafka, f"sightline-try-{uuid.uuid4().hex[:8]}", "sightline-rules-try")
    consumer = Consumer({**config, "enable.partition.eof": True})
    key = camera_id.encode()
    try:
        partitions = topic_reader.partitions_of(consumer, topic)
        asked = [TopicPartition(topic, p, since_ms) for p in partitions]
        found = consumer.offsets_for_times(asked, timeout=10.0)
        start = {tp.partition: tp.offset for tp in found}
        # -1: no record that recent in the partition; start at its end.
        ends = {s.partition: s.end for s in topic_reader.spans(consumer, topic)}
        start = {p: (off if off >= 0 else ends[p]) for p, off in start.items()}
        for msg in topic_reader.read_topic(consumer, topic, start=start, timeout_s=10.0):
            if msg.key() != key:
                continue
            try:
                yield DetectionsRecord.decode(msg.value() or b"")
            except ContractError as exc:
                errors.append(f"{topic}:{msg.partition()}:{msg.offset()}: {exc.reason}")
    finally:
        consumer.close()


def try_rules(
    kafka: KafkaSettings,
    topic: str,
    camera_id: str,
    draft: RulesSettings,
    live: RulesSettings,
    live_version: int,
    minutes: float = DEFAULT_MINUTES,
    flush: bool = True,
) -> TryResult:
    """The draft's and the live rules' alerts on the same records (draft alerts carry no
    version: it is not saved)."""
    if not 0 < minutes <= MAX_MINUTES:
        raise ValueError(f"minutes must be in (0, {MAX_MINUTES:g}]")
    errors: list[str] = []
    records = [
        r for r in recent_records(kafka, topic, camera_id, minutes, errors) if r.camera_id == camera_id
    ]
    draft_alerts = [
        a.model_copy(update={"rules_version": None})
        for a in evaluate(_only(draft, camera_id), records, flush=flush)
    ]
    live_alerts = evaluate(_only(live, camera_id), records, flush=flush, version=live_version)
    return TryResult(camera_id, minutes, len(records), live_version, draft_alerts, live_alerts, errors)


def _only(rules: RulesSettings, camera_id: str) -> RulesSettings:
    """The camera's rules alone (the others would see none of these records anyway)."""
    return rules.model_copy(update={"cameras": [c for c in rules.cameras if c.camera == camera_id]})
