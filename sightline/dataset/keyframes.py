"""The frames a dataset is made of: each alert's key frame, with the detections the model gave it.

Alerts come from the alerts topic (from `since`, by Kafka's time index). Each alert's key frame
is the one the evidence process picks (`evidence.plan`: the frame the alert names by seq, else
the last one captured at or before the alert). The detections topic is read once, from the
earliest key frame on, keeping only the key frames' records (`KeyFrameIndex`), so an export of
many alerts costs one pass over the topic, not one per alert. Each image is then read back by
its record's frame reference (frames topic or Redis claim check). Frames that are gone
(retention) are reported with the reason, never skipped silently.
"""

from __future__ import annotations

import bisect
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

from confluent_kafka import Consumer, TopicPartition

from schemas.alert import AlertRecord
from schemas.detections import DetectionsRecord
from schemas.errors import ContractError
from sightline.config import SightlineConfig
from sightline.evidence.plan import NS, Plan, plan_for
from sightline.evidence.source import read_frames
from streams.claimcheck import ClaimCheckStore
from streams.kafka import consumer_config
from streams.topic_reader import Span, partitions_of, read_spans

# Alerts are searched from this long before `since` in Kafka time (produce time, not created_ns).
ALERT_SLACK_S = 60.0
# A key frame named by seq is looked for this far around its capture time (seqs restart when a
# decoder does, so a seq alone is not a frame).
KEY_SLACK_S = 2.0


@dataclass(frozen=True)
class KeyFrame:
    alert: AlertRecord
    plan: Plan
    record: DetectionsRecord | None = None
    image: bytes | None = None
    missing: str | None = None  # why there is no image, when there is none


def _spans_from(consumer: Consumer, topic: str, at_ms: int) -> list[Span]:
    """Per partition, from the first record at or after `at_ms` (Kafka time) to the end now."""
    wanted = [TopicPartition(topic, p, max(0, at_ms)) for p in partitions_of(consumer, topic)]
    out = []
    for tp in consumer.offsets_for_times(wanted, 10):
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=10)
        out.append(Span(tp.partition, high if tp.offset < 0 else max(low, tp.offset), high))
    return out


def alerts_between(
    consumer: Consumer, topic: str, since_ns: int, until_ns: int | None = None
) -> list[AlertRecord]:
    """Alerts created in [since_ns, until_ns], each once, oldest first."""
    found: dict[str, AlertRecord] = {}
    spans = _spans_from(consumer, topic, int(since_ns / 1e6 - ALERT_SLACK_S * 1000))
    for msg in read_spans(consumer, topic, spans):
        try:
            alert = AlertRecord.decode(msg.value() or b"")
        except ContractError:
            continue
        if alert.created_ns >= since_ns and (until_ns is None or alert.created_ns <= until_ns):
            found.setdefault(alert.alert_id, alert)
    return sorted(found.values(), key=lambda a: (a.created_ns, a.alert_id))


class KeyFrameIndex:
    """The key frame's detections record of each alert, found in one pass over the topic.

    A camera's records are in one partition in capture order, so for a `capture_ns`-keyed
    alert the last record at or before its time seen is its key frame.
    """

    def __init__(self, alerts: list[tuple[AlertRecord, Plan]], lookback_ns: int) -> None:
        self.lookback_ns = lookback_ns
        by_camera: dict[str, list[tuple[int, int]]] = defaultdict(list)  # camera -> (key_ns, index)
        for i, (alert, plan) in enumerate(alerts):
            by_camera[alert.camera_id].append((plan.key_ns, i))
        self.plans = [plan for _alert, plan in alerts]
        self.cameras = {cam: sorted(items) for cam, items in by_camera.items()}
        self.keys = {cam: [k for k, _i in items] for cam, items in self.cameras.items()}
        self.found: dict[int, DetectionsRecord] = {}

    def wants(self, camera: bytes | None) -> bool:
        return camera is not None and camera.decode(errors="replace") in self.cameras

    def add(self, record: DetectionsRecord) -> None:
        cam, capture = record.camera_id, record.capture_ns
        keys = self.keys.get(cam)
        if keys is None:
            return
        slack = int(KEY_SLACK_S * NS)
        first = bisect.bisect_left(keys, capture - slack)
        last = bisect.bisect_right(keys, capture + self.lookback_ns)
        for key_ns, i in self.cameras[cam][first:last]:
            plan = self.plans[i]
            if plan.key_seq is not None:
                if record.seq == plan.key_seq and abs(capture - key_ns) <= slack:
                    self.found[i] = record
            elif key_ns - self.lookback_ns <= capture <= key_ns:
                self.found[i] = record  # later in capture order: closer to the alert


def key_frames(config: SightlineConfig, since_ns: int, until_ns: int | None = None) -> Iterator[KeyFrame]:
    """Each alert's key frame, with its image or the reason it has none."""
    group = f"sightline-dataset-{uuid.uuid4().hex[:8]}"
    consumer = Consumer(consumer_config(config.kafka, group, "sightline-dataset"))
    claims = ClaimCheckStore(config.redis.url, config.frames.claim_check_ttl_s)
    settings = config.evidence
    try:
        alerts = alerts_between(consumer, config.topics.alerts.name, since_ns, until_ns)
        planned = [(alert, plan_for(alert, settings)) for alert in alerts]
        lookback = int(max(settings.pre_roll_s, 1.0) * NS)
        index = KeyFrameIndex(planned, lookback)
        if planned:
            earliest = min(plan.key_ns for _a, plan in planned) - lookback
            topic = config.topics.detections.name
            at_ms = int((earliest - settings.search_slack_s * NS) / 1e6)
            for msg in read_spans(consumer, topic, _spans_from(consumer, topic, at_ms)):
                if not index.wants(msg.key()):
                    continue
                try:
                    index.add(DetectionsRecord.decode(msg.value() or b""))
                except ContractError:
                    continue
        for i, (alert, plan) in enumerate(planned):
            record = index.found.get(i)
            if record is None:
                which = f"seq {plan.key_seq}" if plan.key_seq is not None else f"captured by {plan.key_ns}"
                yield KeyFrame(alert, plan, missing=f"no detections record of the key frame ({which})")
                continue
            frame = read_frames(consumer, claims, [record])[record.seq]
            yield KeyFrame(alert, plan, record, frame.payload, frame.missing)
    finally:
        consumer.close()
        claims.close()
