"""Exactly-once delivery: one Kafka transaction covers every batch finished in an interval.

A transaction costs a few broker round trips whatever it holds, so grouping the batches that
finished within ``transaction_interval_ms`` (default 100 ms) makes exactly-once nearly as fast as
at-least-once. Transactions run on the consumer thread, between polls: the group generation sent
with the offsets is then always the current one, and a rebalance never interleaves with an open
transaction. Tracker updates happen inside the transaction (an undo log rolls them back on abort).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer, TopicPartition

from inference.at_least_once import DeliveryFailed
from inference.batching import Batch
from inference.outbox import Outbox
from inference.parts import WorkerParts
from streams.retry import call_with_retry

log = logging.getLogger(__name__)


class TransactionsUnavailable(RuntimeError):
    """The transactional producer could not start (not retriable): the worker stops."""


class ExactlyOnce:
    def __init__(
        self,
        parts: WorkerParts,
        outbox: Outbox,
        producer_config: dict[str, Any],
        *,
        interval_s: float,
        max_pending: int,
        rewind: Callable[[], None],
    ) -> None:
        self._producer_config = producer_config
        self.consumer = parts.consumer
        self.outbox = outbox
        self.trackers = parts.trackers
        self.health = parts.health
        self.stop = parts.stop
        self.in_flight = parts.in_flight
        self.interval_s = interval_s
        self.max_pending = max_pending
        self._rewind = rewind  # the worker's: seek back to every uncommitted batch, drop them all
        self.pending: list[Batch] = []  # finished, waiting for the next transaction
        self.committed = 0  # transactions committed, for tests and benchmarks
        self._pending_since = 0.0
        self.producer = Producer(producer_config)
        self._init_transactions()
        self._watching = threading.Event()
        threading.Thread(target=self._watch_producer, name="kafka-watch", daemon=True).start()

    # -- the worker's side ----------------------------------------------------------------
    def deliver(self, batch: Batch) -> None:
        if not self.pending:
            self._pending_since = time.monotonic()
        self.pending.append(batch)

    def service(self, *, stopping: bool, force: bool = False) -> None:
        """Commit the pending batches once the interval is up (or ``force``)."""
        if not self.pending:
            return
        due = time.monotonic() - self._pending_since >= self.interval_s
        if not (force or due or len(self.pending) >= self.max_pending):
            return
        batches, self.pending = self.pending, []
        failed = next((b for b in batches if b.error is not None), None)
        if failed is not None:
            if stopping:  # e.g. Redis down while stopping: nothing committed, all read again
                return
            raise DeliveryFailed(f"batch failed, not committing: {failed.error}")
        try:
            self._commit(batches)
        except KafkaException as exc:
            self._abort_and_rewind(exc)
            return
        for batch in batches:
            batch.seal()
            if batch in self.in_flight:
                self.in_flight.remove(batch)

    def settle(self, deadline: float, *, stopping: bool) -> None:
        """Commit what is pending now (on revoke and shutdown)."""
        self.service(stopping=stopping, force=True)

    def lost(self) -> None:
        self.pending.clear()  # never in a transaction yet: whoever owns them now reads them again

    def revoked(self, partitions: list[TopicPartition]) -> None:
        pass  # offsets travel in the transactions

    def close(self, kafka_up: bool) -> None:
        self._watching.set()
        self.producer.flush(30 if kafka_up else 1)

    # -- transactions -------------------------------------------------------------------------
    def _commit(self, batches: list[Batch]) -> None:
        """Any failure (even a retriable timeout while Kafka is away) aborts and re-reads: retrying
        in place never polls the consumer, so a worker that lost its group could not rejoin."""
        self.trackers.begin()  # undo log, rolled back by _abort_and_rewind
        self.producer.begin_transaction()
        offsets: dict[tuple[str, int], int] = {}
        for batch in batches:
            self.outbox.publish(self.producer, batch)
            for key, offset in batch.next_offsets.items():
                offsets[key] = max(offsets.get(key, 0), offset)
        group = self.consumer.consumer_group_metadata()
        positions = [TopicPartition(t, p, o) for (t, p), o in sorted(offsets.items())]
        send_offsets_with_deadline(self.producer, positions, group, timeout_s=10)
        self.producer.commit_transaction(10)
        self.committed += 1
        self.health.ok("kafka")

    def _abort_and_rewind(self, exc: KafkaException) -> None:
        """Abort the transaction and re-read every uncommitted frame.

        A fatal producer error (fenced, epoch bumped after a timeout) gets a fresh producer with
        the same transactional.id; a stop request leaves the transaction to time out (or to be
        aborted by the restarted twin) instead of waiting for a broker that may be away.
        """
        self.trackers.rollback()  # the batches' tracker updates are undone with them
        error = exc.args[0]
        if self.stop.is_set():
            log.warning("stopping with an unfinished transaction (%s); it is not committed", error)
            return
        log.warning("transaction aborted (%s); re-reading its frames", error)
        if error.fatal() or not error.txn_requires_abort():
            # Fenced, or timed out while Kafka was away: librdkafka's transaction state after a
            # timed-out call is not to be trusted (a later send_offsets_to_transaction can hang), so
            # start afresh; init_transactions with the same id aborts the open transaction.
            self.health.degraded("kafka", f"transaction: {error}")
            self._new_producer(error)
        else:
            self._abort_transaction()
        self._rewind()

    def _abort_transaction(self) -> None:
        """Abort; if Kafka does not answer, a new producer with the same id fences and aborts it."""
        err: KafkaError | None = None
        for _ in range(3):
            if self.stop.is_set():
                return
            try:
                self.producer.abort_transaction(10)
                return
            except KafkaException as exc:
                err = exc.args[0]
                log.info("abort_transaction failed: %s", err)
                if err.fatal():
                    break
                self.health.degraded("kafka", f"abort_transaction: {err}")
        self._new_producer(err)

    def _new_producer(self, error: KafkaError | None) -> None:
        log.warning("transactional producer unusable (%s); starting a new one", error)
        old, self.producer = self.producer, Producer(self._producer_config)
        # Destroying a producer can wait on a broker that is away: the last reference goes on
        # another thread (Thread.run drops its args when done).
        threading.Thread(target=Producer.purge, args=(old,), name="retire-producer", daemon=True).start()
        del old
        self._init_transactions()

    def _init_transactions(self) -> None:
        def init() -> None:
            try:
                self.producer.init_transactions(10)
            except KafkaException as exc:
                err = exc.args[0]
                if not err.retriable() or self.stop.is_set():
                    raise TransactionsUnavailable(f"cannot start the transactional producer: {err}") from exc
                raise

        retry_on = (KafkaException,)
        call_with_retry(init, health=self.health, dependency="kafka", retry_on=retry_on, stop=self.stop)

    def _watch_producer(self) -> None:
        """Serve the producer's events off the consumer thread.

        Transactional calls block the consumer thread for seconds while Kafka is away, and
        librdkafka reports errors only from poll: without this, /readyz would say "up" all along.
        """
        while not self._watching.wait(0.5):
            self.producer.poll(0)


def send_offsets_with_deadline(
    producer: Producer, offsets: list[TopicPartition], group: Any, timeout_s: float, grace_s: float = 5.0
) -> None:
    """`send_offsets_to_transaction`, which must not outlive its timeout.

    librdkafka ignores the timeout of this call while the group coordinator is away (issue
    confluentinc/librdkafka#5456, open in 2.16): after a broker restart it could block the
    worker forever. The call runs on a thread of its own; past the deadline the producer is
    reported unusable (a fatal error), so the caller starts a new one with the same
    transactional.id, which fences the stuck one and aborts its transaction.
    """
    outcome: list[BaseException | None] = []

    def call() -> None:
        try:
            producer.send_offsets_to_transaction(offsets, group, timeout_s)
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            outcome.append(exc)

    thread = threading.Thread(target=call, name="send-offsets", daemon=True)
    thread.start()
    thread.join(timeout_s + grace_s)
    if not outcome:
        reason = f"send_offsets_to_transaction still blocked after {timeout_s + grace_s:.0f}s"
        raise KafkaException(KafkaError(KafkaError._TIMED_OUT, reason, fatal=True))
    if outcome[0] is not None:
        raise outcome[0]
