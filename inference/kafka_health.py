"""What librdkafka's error reports mean for an inference worker: degraded, or stop.

Transient errors (broker down, `_TRANSPORT`, `_ALL_BROKERS_DOWN`) mark Kafka degraded and the
clients retry by themselves; a probe notices when it is back. Errors no retry can fix (fatal client
errors, authorization, a topic that stays unknown) must stop the worker with a clear message
instead of being logged forever.
"""

from __future__ import annotations

import time

from confluent_kafka import Consumer, KafkaError

from streams.health import Health
from streams.kafka import is_fatal_error, is_missing_topic
from streams.kafka_probe import KafkaBackProbe

UNKNOWN_TOPIC_GRACE_S = 10.0  # a topic being created may be unknown for a moment; then it is fatal


class KafkaWatch:
    def __init__(self, health: Health, topic: str, *, transactional: bool) -> None:
        self.health = health
        self.topic = topic
        self.transactional = transactional
        self._fatal: KafkaError | None = None
        self._missing_since: float | None = None
        self._missing_error: KafkaError | None = None
        self._probe: KafkaBackProbe | None = None

    def on_error(self, err: KafkaError) -> None:
        """Consumer `error_cb` and consumer error events."""
        if is_missing_topic(err):
            self._missing_since = self._missing_since or time.monotonic()
            self._missing_error = err
        elif is_fatal_error(err):
            self._fatal = err
        else:
            self.health.degraded("kafka", str(err))

    def on_producer_error(self, err: KafkaError) -> None:
        if err.fatal() and self.transactional:
            return  # the transaction fails with it, and the worker starts a fresh producer
        self.on_error(err)

    def topic_found(self) -> None:
        self._missing_since = None

    def check(self, consumer: Consumer) -> str | None:
        """Why the worker must stop, if it must; while degraded, probe the broker every 2 s."""
        if self._fatal is not None:
            return f"Kafka error the worker cannot recover from: {self._fatal}"
        now = time.monotonic()
        if self._missing_since is not None and now - self._missing_since > UNKNOWN_TOPIC_GRACE_S:
            return f"cannot consume {self.topic!r}: {self._missing_error}"
        if self._probe is None or self._probe.client is not consumer:
            self._probe = KafkaBackProbe(self.health, consumer, self.topic)
        self._probe.poll()
        return None
