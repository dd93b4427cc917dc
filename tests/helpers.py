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
    idle_timeout: float = 5.0,
    max_wait: float = 60.0,
    read_committed: bool = True,
) -> list[Message]:
    """Every record of `topic` from offset 0, until `expected` arrived or nothing new came."""
    consumer = make_consumer(config.kafka, f"test-reader-{uuid.uuid4().hex}", read_committed=read_committed)
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    messages: list[Message] = []
    started = last = time.monotonic()
    try:
        while time.monotonic() - started < max_wait:
            if expected is not None and len(messages) >= expected:
                # keep reading briefly to catch duplicates beyond the expected count
                if time.monotonic() - last > 1.0:
                    break
            elif time.monotonic() - last > idle_timeout:
                break
            batch = consumer.consume(500, 0.2)
            for msg in batch:
                if msg.error() is None:
                    messages.append(msg)
                    last = time.monotonic()
    finally:
        consumer.close()
    return messages
