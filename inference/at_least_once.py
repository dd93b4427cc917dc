"""At-least-once delivery: publish each finished batch, commit its offsets once Kafka acked it all.

Commits go oldest batch first, so a committed offset never passes a frame whose detections are
not yet acknowledged; a crash re-reads at most the unacknowledged tail. A batch that failed holds
its partitions (``Holds``): no later batch of theirs is committed, also not by the drain that
closing the consumer runs after the failure stopped the worker.
"""

from __future__ import annotations

import logging
import time

from confluent_kafka import Producer, TopicPartition

from inference.batching import Batch, Holds
from inference.commits import OffsetCommits
from inference.outbox import Outbox
from inference.parts import WorkerParts

log = logging.getLogger(__name__)


class DeliveryFailed(RuntimeError):
    """A batch's records were refused: committing past it would lose frames."""


class AtLeastOnce:
    def __init__(
        self, parts: WorkerParts, outbox: Outbox, producer: Producer, commits: OffsetCommits
    ) -> None:
        self.consumer = parts.consumer
        self.producer = producer
        self.outbox = outbox
        self.health = parts.health
        self.in_flight = parts.in_flight
        self.commits = commits
        self.holds = Holds()

    def deliver(self, batch: Batch) -> None:
        if batch.error is None:
            self.outbox.publish(self.producer, batch)
        batch.seal()

    def service(self, *, stopping: bool, force: bool = False) -> None:
        """Serve delivery reports and commit every acknowledged batch, oldest first."""
        self.producer.poll(0)
        while self.in_flight and self.in_flight[0].done.is_set():
            batch = self.in_flight.popleft()
            if batch.error is not None or self.holds.blocks(batch):
                self.holds.hold(batch)  # uncommitted, read again, and nothing after it either
                if batch.error is not None and not stopping:
                    raise DeliveryFailed(f"batch failed, not committing: {batch.error}")
                continue
            self.health.ok("kafka")  # its records were acknowledged
            self.commits.commit(self.consumer, batch.offsets())

    def settle(self, deadline: float, *, stopping: bool) -> None:
        """Wait (bounded) for the acks of every delivered batch, then commit synchronously."""
        while self.in_flight and time.monotonic() < deadline:
            self.producer.poll(0.02)
            self.service(stopping=stopping)
        if self.in_flight:
            log.warning("%d batches not acknowledged in time; left uncommitted", len(self.in_flight))
            self.in_flight.clear()
        self.commits.commit_final(self.consumer, asynchronous=not self.health.is_up("kafka"))

    def lost(self) -> None:
        self.commits.forget()
        self.holds.release()

    def revoked(self, partitions: list[TopicPartition]) -> None:
        self.commits.forget(partitions)
        self.holds.release(partitions)

    def close(self, kafka_up: bool) -> None:
        # With Kafka away, unacknowledged records are uncommitted work: don't wait long for them.
        self.producer.flush(30 if kafka_up else 1)
