"""Is Kafka reachable: one metadata request, and a throttled "is it back yet" check for `Health`.

librdkafka reconnects by itself after an outage but never says "connected again", so a process
that marked Kafka down (from an error callback) asks the broker now and then; its answer is the
only sign that Kafka is back. Readiness probes, the dev stack's start-up wait and each stage's
recovery all ask the same question, so they ask it here.
"""

from __future__ import annotations

import time

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient

from streams.health import Health

KafkaClient = Consumer | Producer | AdminClient

PROBE_EVERY_S = 2.0


def kafka_unreachable(client: KafkaClient, topic: str | None = None, timeout_s: float = 2.0) -> str | None:
    """Why no broker answered a metadata request (for `topic`, if given) within `timeout_s`;
    None when one did."""
    try:
        metadata = client.list_topics(topic, timeout=timeout_s)
    except KafkaException as exc:
        return str(exc.args[0] if exc.args else exc)
    return None if metadata.brokers else "the metadata lists no broker"


class KafkaBackProbe:
    """While `health` has Kafka down, asks the broker every `every_s` (with `client`, which the
    caller already has) and marks Kafka up once it answers. Cheap to call on every loop turn."""

    def __init__(
        self,
        health: Health,
        client: KafkaClient,
        topic: str | None = None,
        *,
        every_s: float = PROBE_EVERY_S,
        timeout_s: float = 1.0,
    ) -> None:
        self.health, self.client, self.topic = health, client, topic
        self.every_s, self.timeout_s = every_s, timeout_s
        self._next_at = 0.0

    def poll(self) -> None:
        if self.health.is_up("kafka") or time.monotonic() < self._next_at:
            return
        self._next_at = time.monotonic() + self.every_s
        if kafka_unreachable(self.client, self.topic, self.timeout_s) is None:
            self.health.ok("kafka")
