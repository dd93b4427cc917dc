"""Test helpers that read topics back from the real broker."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Message, TopicPartition

from sightline.config import SightlineConfig
from streams.kafka import make_consumer


def read_topic(
    config: SightlineConfig,
    topic: str,
    *,
    expected: int | None = None,
    max_wait: float = 60.0,
    read_committed: bool = True,
) -> list[Message]:
    """Records of `topic` from offset 0.

    With `expected`, waits until that many arrived (then lingers a second to catch extras).
    Without it, reads what the topic holds now: up to the end offsets seen at the start.
    """
    consumer = make_consumer(config.kafka, f"test-reader-{uuid.uuid4().hex}", read_committed=read_committed)
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    assignment = [TopicPartition(topic, p, 0) for p in partitions]
    ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in assignment}
    consumer.assign(assignment)
    positions = dict.fromkeys(ends, 0)
    messages: list[Message] = []
    started = time.monotonic()
    reached_at: float | None = None
    try:
        while time.monotonic() - started < max_wait:
            if expected is None and all(positions[p] >= end for p, end in ends.items()):
                break
            if expected is not None and len(messages) >= expected:
                reached_at = reached_at or time.monotonic()
                if time.monotonic() - reached_at > 1.0:
                    break
            for msg in consumer.consume(500, 0.2):
                if msg.error() is None:
                    messages.append(msg)
                    positions[msg.partition()] = msg.offset() + 1
            if expected is None:
                # Transaction markers and aborted records take offsets without being returned.
                for tp in consumer.position(assignment):
                    if tp.offset >= 0:
                        positions[tp.partition] = max(positions[tp.partition], tp.offset)
    finally:
        consumer.close()
    return messages
