"""At-least-once offset commits: asynchronous per batch, one synchronous commit at the end.

A failed commit (broker down, group membership lost) only means some frames are read again
after a restart or rebalance, which at-least-once allows: failures are logged, counted and
reported as degraded, never allowed to kill the worker. The final commit names its offsets
explicitly, because offsets are never stored in the consumer (`enable.auto.offset.store` is off):
a bare `commit()` would commit nothing.
"""

from __future__ import annotations

import logging
import threading

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from inference import metrics
from streams.health import Health

log = logging.getLogger(__name__)


class OffsetCommits:
    """Tracks the next offset to commit per partition and commits it without ever raising."""

    def __init__(self, health: Health) -> None:
        self.health = health
        self.done: dict[tuple[str, int], int] = {}  # offsets of acknowledged batches, not yet final
        self.succeeded = 0
        self.failed = 0
        self._lock = threading.Lock()

    def on_commit(self, err: KafkaError | None, partitions: list[TopicPartition]) -> None:
        """librdkafka's `on_commit` callback: the only place async commit outcomes are visible."""
        errors = [tp for tp in partitions if tp.error is not None]
        if err is None and not errors:
            with self._lock:
                self.succeeded += 1
            return
        if err is not None and err.code() == KafkaError._NO_OFFSET:
            return  # nothing to commit
        self._failed(err or errors[0].error)

    def _failed(self, err: object) -> None:
        with self._lock:
            self.failed += 1
        metrics.COMMIT_FAILURES.inc()
        log.warning("offset commit failed (frames after it may be read again): %s", err)

    def commit(self, consumer: Consumer, offsets: list[TopicPartition], *, asynchronous: bool = True) -> None:
        for tp in offsets:
            key = (tp.topic, tp.partition)
            self.done[key] = max(self.done.get(key, 0), tp.offset)
        if not offsets:
            return
        try:
            result = consumer.commit(offsets=offsets, asynchronous=asynchronous)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError._NO_OFFSET:
                self._failed(exc.args[0])
            return
        if not asynchronous:
            self.on_commit(None, result or [])

    def commit_final(self, consumer: Consumer, *, asynchronous: bool = False) -> None:
        """Commit every acknowledged batch's offsets for the partitions still held.

        Synchronous unless the broker is known to be away (then a blocking commit could hang a
        shutdown that was asked for).
        """
        try:
            held = {(tp.topic, tp.partition) for tp in consumer.assignment()}
        except KafkaException:
            held = set()
        offsets = [TopicPartition(t, p, o) for (t, p), o in sorted(self.done.items()) if (t, p) in held]
        self.commit(consumer, offsets, asynchronous=asynchronous)

    def forget(self, partitions: list[TopicPartition] | None = None) -> None:
        """Partitions given back or lost: their offsets are another worker's business now."""
        if partitions is None:
            self.done.clear()
            return
        for tp in partitions:
            self.done.pop((tp.topic, tp.partition), None)
