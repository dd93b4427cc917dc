"""Reading an alert's frames back: detections by capture time, frames by the references in them.

Detections are found by time: Kafka's `offsets_for_times` on every partition of the detections
topic (record timestamps are produce times, so the search starts `search_slack_s` early), then
read forward, keeping the camera's records whose capture time falls in the clip. Each detections
record names its frame exactly (topic, partition, offset, or the Redis claim-check key), so the
frames are read by those references: the detections topic is the index of the frames topic, and
a frame with no detections record (dead-lettered) is never guessed at.

What cannot be read is reported, never skipped silently: an offset below the frames partition's
earliest kept one expired with the topic's retention; a claim check Redis no longer holds
expired with its TTL.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field

from confluent_kafka import Consumer, TopicPartition

from schemas.detections import DetectionsRecord
from schemas.errors import ContractError
from streams.claimcheck import ClaimCheckStore
from streams.topic_reader import Span, TopicReadError, partitions_of, read_spans

log = logging.getLogger(__name__)
READ_TIMEOUT_S = 10.0


@dataclass
class DetectionsScan:
    """The camera's detections records in [start_ns, end_ns], read incrementally (`advance`)."""

    topic: str
    camera_id: str
    start_ns: int
    end_ns: int
    slack_ns: int
    records: dict[int, DetectionsRecord] = field(default_factory=dict)  # by seq: a redelivery dedupes
    # A record of the camera captured after `end_ns` was seen: every frame of the clip is in.
    reached_end: bool = False
    positions: dict[int, int] | None = None

    def advance(self, consumer: Consumer) -> None:
        """Read what arrived since the last call. A partition that stalls (an open transaction
        past its timeout) is left for the next call."""
        if self.positions is None:
            self.positions = _offsets_at(consumer, self.topic, (self.start_ns - self.slack_ns) // 1_000_000)
        camera = self.camera_id.encode()
        for partition, position in self.positions.items():
            low, high = consumer.get_watermark_offsets(TopicPartition(self.topic, partition), timeout=5)
            span = Span(partition, max(position, low), high)
            try:
                for msg in read_spans(consumer, self.topic, [span], READ_TIMEOUT_S):
                    self.positions[partition] = (msg.offset() or 0) + 1
                    if msg.key() != camera:
                        continue
                    try:
                        record = DetectionsRecord.decode(msg.value() or b"")
                    except ContractError:
                        continue
                    if record.capture_ns > self.end_ns:
                        self.reached_end = True
                        break  # a camera's records are in one partition, in capture order
                    if record.capture_ns >= self.start_ns:
                        self.records[record.seq] = record
                else:
                    self.positions[partition] = max(self.positions[partition], span.end)
            except TopicReadError as exc:
                log.debug("evidence: %s[%d] not read to its end yet: %s", self.topic, partition, exc)

    def ordered(self) -> list[DetectionsRecord]:
        return [self.records[s] for s in sorted(self.records)]


def _offsets_at(consumer: Consumer, topic: str, at_ms: int) -> dict[int, int]:
    """Per partition, the first offset with a timestamp at or after `at_ms` (else the end)."""
    partitions = partitions_of(consumer, topic)
    found = consumer.offsets_for_times([TopicPartition(topic, p, max(0, at_ms)) for p in partitions], 10)
    out = {}
    for tp in found:
        if tp.offset < 0:  # nothing that late: start at the end
            tp.offset = consumer.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=5)[1]
        out[tp.partition] = tp.offset
    return out


@dataclass(frozen=True)
class FrameResult:
    """A frame's image bytes, or why there are none."""

    payload: bytes | None = None
    missing: str | None = None


EXPIRED_REDIS = "claim-checked image expired from Redis (frames.claim_check_ttl_s)"


def expired_kafka(topic: str, partition: int, low: int) -> str:
    return (
        f"frame record expired from Kafka: {topic}[{partition}] keeps offsets from {low} on "
        f"(topics.frames.retention_ms)"
    )


def read_frames(
    consumer: Consumer, claims: ClaimCheckStore, records: list[DetectionsRecord]
) -> dict[int, FrameResult]:
    """The image of each record's frame, by seq."""
    out: dict[int, FrameResult] = {}
    wanted: dict[tuple[str, int], dict[int, int]] = defaultdict(dict)  # (topic, partition) -> offset -> seq
    for record in records:
        ref = record.frame
        if ref.claim_check:
            try:
                out[record.seq] = FrameResult(claims.get(ref.claim_check))
            except ContractError:
                out[record.seq] = FrameResult(missing=EXPIRED_REDIS)
        else:
            wanted[(ref.topic, ref.partition)][ref.offset] = record.seq
    for (topic, partition), offsets in wanted.items():
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=5)
        for offset in [o for o in offsets if o < low]:
            out[offsets.pop(offset)] = FrameResult(missing=expired_kafka(topic, partition, low))
        if not offsets:
            continue
        span = Span(partition, min(offsets), min(high, max(offsets) + 1))
        for msg in read_spans(consumer, topic, [span], READ_TIMEOUT_S):
            seq = offsets.get(msg.offset() or 0)
            if seq is not None:
                out[seq] = FrameResult(msg.value() or b"")
        for offset, seq in offsets.items():
            out.setdefault(seq, FrameResult(missing=f"no frame record at {topic}[{partition}]@{offset}"))
    return out
