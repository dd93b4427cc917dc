"""The frames a dataset is made of: each alert's key frame, with the detections the model gave it.

Alerts come from the alerts topic (from `since`, by Kafka's time index), each alert's key frame
is found as the evidence process finds it (`evidence.plan`: the frame the alert names, else the
last one captured at or before the alert), from the detections topic; the image is read back by
the detections record's frame reference (frames topic or Redis claim check). Frames that are gone
(retention) are reported with the reason, never skipped silently.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from confluent_kafka import Consumer, TopicPartition

from schemas.alert import AlertRecord
from schemas.detections import DetectionsRecord
from schemas.errors import ContractError
from sightline.config import SightlineConfig
from sightline.evidence.plan import NS, Plan, plan_for
from sightline.evidence.source import DetectionsScan, read_frames
from streams.claimcheck import ClaimCheckStore
from streams.kafka import consumer_config
from streams.topic_reader import Span, partitions_of, read_spans

# Alerts are searched from this long before `since` in Kafka time (produce time, not created_ns).
ALERT_SLACK_S = 60.0
# For an alert that names its key frame by seq, its detections are searched this far past it.
KEY_SLACK_S = 2.0


@dataclass(frozen=True)
class KeyFrame:
    alert: AlertRecord
    plan: Plan
    record: DetectionsRecord | None = None
    image: bytes | None = None
    missing: str | None = None  # why there is no image, when there is none


def alerts_between(
    consumer: Consumer, topic: str, since_ns: int, until_ns: int | None = None
) -> list[AlertRecord]:
    """Alerts created in [since_ns, until_ns], each once, oldest first."""
    at_ms = max(0, int(since_ns / 1e6 - ALERT_SLACK_S * 1000))
    starts = consumer.offsets_for_times(
        [TopicPartition(topic, p, at_ms) for p in partitions_of(consumer, topic)], 10
    )
    spans = []
    for tp in starts:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=10)
        spans.append(Span(tp.partition, high if tp.offset < 0 else max(low, tp.offset), high))
    found: dict[str, AlertRecord] = {}
    for msg in read_spans(consumer, topic, spans):
        try:
            alert = AlertRecord.decode(msg.value() or b"")
        except ContractError:
            continue
        if alert.created_ns >= since_ns and (until_ns is None or alert.created_ns <= until_ns):
            found.setdefault(alert.alert_id, alert)
    return sorted(found.values(), key=lambda a: (a.created_ns, a.alert_id))


def key_frames(config: SightlineConfig, since_ns: int, until_ns: int | None = None) -> Iterator[KeyFrame]:
    """Each alert's key frame, with its image or the reason it has none."""
    group = f"sightline-dataset-{uuid.uuid4().hex[:8]}"
    consumer = Consumer(consumer_config(config.kafka, group, "sightline-dataset"))
    claims = ClaimCheckStore(config.redis.url, config.frames.claim_check_ttl_s)
    settings = config.evidence
    try:
        for alert in alerts_between(consumer, config.topics.alerts.name, since_ns, until_ns):
            plan = plan_for(alert, settings)
            end = plan.key_ns + (int(KEY_SLACK_S * NS) if plan.key_seq is not None else 0)
            start = plan.key_ns - int(max(settings.pre_roll_s, 1.0) * NS)
            scan = DetectionsScan(
                config.topics.detections.name, alert.camera_id, start, end, int(settings.search_slack_s * NS)
            )
            scan.advance(consumer)
            record = plan.key_record(scan.ordered())
            if record is None:
                why = f"seq {plan.key_seq}" if plan.key_seq is not None else f"captured by {plan.key_ns}"
                yield KeyFrame(alert, plan, missing=f"no detections record of the key frame ({why})")
                continue
            frame = read_frames(consumer, claims, [record])[record.seq]
            yield KeyFrame(alert, plan, record, frame.payload, frame.missing)
    finally:
        consumer.close()
        claims.close()
