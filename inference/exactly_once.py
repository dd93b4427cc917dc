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
from collections.abc import Callable, Iterable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer, TopicPartition

from inference.at_least_once import DeliveryFailed
from inference.batching import Batch, Holds
from inference.outbox import Outbox
from inference.parts import WorkerParts
from streams.retry import call_with_retry

log = logging.getLogger(__name__)


# commit_transaction calls (each up to 10 s) while its error stays retriable, before its outcome
# is learnt from the group's committed offsets instead.
COMMIT_ATTEMPTS = 3


class TransactionsUnavailable(RuntimeError):
    """The transactional producer could not start (not retriable): the worker stops."""


class CommitInDoubt(Exception):
    """``commit_transaction`` failed in a way that does not say whether the transaction committed."""

    def __init__(self, error: KafkaError) -> None:
        super().__init__(str(error))
        self.error = error


class ExactlyOnce:
    def __init__(
        self,
        parts: WorkerParts,
        outbox: Outbox,
        producer_config: dict[str, Any],
        *,
        interval_s: float,
        max_pending: int,
        rewind: Callable[[dict[tuple[str, int], int] | None], None],
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
        # The worker's: drop every batch in flight and seek back to the first uncommitted frame of
        # each partition (to the given offsets where known).
        self._rewind = rewind
        self.holds = Holds()
        self.pending: list[Batch] = []  # finished, waiting for the next transaction
        self.committed = 0  # transactions committed, for tests and benchmarks
        self._pending_since = 0.0
        # Why the producer must be replaced before its next transaction (None: it need not be).
        self._stale: str | None = None
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
        batches = self._committable(batches, stopping=stopping)
        if not batches:
            return
        if self._stale is not None and not self._renew(batches):
            return
        try:
            self._commit(batches)
        except CommitInDoubt as exc:
            if not self._settle_in_doubt(batches, exc.error):
                return
        except KafkaException as exc:
            self._abort_and_rewind(batches, exc)
            return
        self._done(batches)

    def _committable(self, batches: list[Batch], *, stopping: bool) -> list[Batch]:
        """The batches that may go into the transaction; the others are dropped and held.

        A failed batch stops the worker (DeliveryFailed): nothing of this interval is committed, and
        nothing after it is while the worker stops. While it stops anyway (e.g. Redis down: its
        frames were never read) the failed batch is dropped, and with it every later batch of its
        partitions (``Holds``): committing one would move the offset past the failed frames.
        """
        failed = next((b for b in batches if b.error is not None), None)
        if failed is not None and not stopping:
            for batch in batches:
                self.holds.hold(batch)
            raise DeliveryFailed(f"batch failed, not committing: {failed.error}")
        ready: list[Batch] = []
        for batch in batches:
            if batch.error is not None or self.holds.blocks(batch):
                self.holds.hold(batch)
            else:
                ready.append(batch)
        return ready

    def _done(self, batches: list[Batch]) -> None:
        for batch in batches:
            batch.seal()
            if batch in self.in_flight:
                self.in_flight.remove(batch)

    def settle(self, deadline: float, *, stopping: bool) -> None:
        """Commit what is pending now (on revoke and shutdown)."""
        self.service(stopping=stopping, force=True)

    def lost(self) -> None:
        self.pending.clear()  # never in a transaction yet: whoever owns them now reads them again
        self.holds.release()
        # The group coordinator went away for a session timeout (a broker outage, a pause): the
        # producer still has it cached, and its next send_offsets_to_transaction would wait on that
        # stale entry past its timeout (librdkafka#5456, #5511) until cut off 15 s later.
        self._stale = "partitions lost"

    def _renew(self, batches: list[Batch]) -> bool:
        """A fresh producer (same transactional.id) before the next transaction; False: stopping."""
        reason, self._stale = self._stale, None
        log.info("new transactional producer before the next transaction (%s)", reason)
        try:
            self._new_producer(None)
        except TransactionsUnavailable as exc:
            if not self.stop.is_set():
                raise
            return self._stop_uncommitted(batches, KafkaError(KafkaError._TIMED_OUT, str(exc)))
        return True

    def revoked(self, partitions: list[TopicPartition]) -> None:
        self.holds.release(partitions)  # offsets travel in the transactions; the next owner starts there

    def close(self, kafka_up: bool) -> None:
        self._watching.set()
        self.producer.flush(30 if kafka_up else 1)

    # -- transactions -------------------------------------------------------------------------
    def _commit(self, batches: list[Batch]) -> None:
        """One transaction for ``batches``. A failure before the commit call (even a retriable
        timeout while Kafka is away) aborts and re-reads: retrying in place never polls the
        consumer, so a worker that lost its group could not rejoin. The commit call itself is
        different: it may fail after the coordinator got EndTxn (``_commit_transaction``)."""
        self.trackers.begin()  # undo log, rolled back by _abort_and_rewind
        self.producer.begin_transaction()
        for batch in batches:
            self.outbox.publish(self.producer, batch)
        group = self.consumer.consumer_group_metadata()
        positions = [TopicPartition(t, p, o) for (t, p), o in sorted(_next_offsets(batches).items())]
        send_offsets_with_deadline(self.producer, positions, group, timeout_s=10)
        self._commit_transaction()
        self.committed += 1
        self.health.ok("kafka")

    def _commit_transaction(self) -> None:
        """``commit_transaction``, called again while its error is retriable.

        librdkafka's documented pattern: a commit that timed out may have reached the coordinator
        and goes on in the background; calling again resumes it and reports how it ended. An error
        that requires an abort means it did not commit (raised as is). Any other (fatal, or still
        retriable after ``COMMIT_ATTEMPTS`` calls, or a stop) leaves the outcome unknown:
        ``CommitInDoubt``.
        """
        error: KafkaError | None = None
        for _ in range(COMMIT_ATTEMPTS):
            try:
                self.producer.commit_transaction(10)
                return
            except KafkaException as exc:
                error = exc.args[0]
                if error.txn_requires_abort():
                    raise
            log.warning("commit_transaction failed (%s); its outcome is not known yet", error)
            if not error.retriable() or self.stop.is_set():
                break
            self.health.degraded("kafka", f"commit_transaction: {error}")
        assert error is not None
        raise CommitInDoubt(error)

    def _settle_in_doubt(self, batches: list[Batch], error: KafkaError) -> bool:
        """Learn what became of a commit of unknown outcome; True when it went through.

        A new producer with the same transactional.id makes the coordinator finish what the old one
        left (a commit it got EndTxn for completes, anything else is aborted); the group's committed
        offsets then tell which. Committed: the batches are done and their tracker updates stay.
        Not: they are rolled back and every partition is read again from its committed offset (not
        from the batches' first offsets, which would repeat frames of a commit that did happen).
        """
        if self.stop.is_set():
            return self._stop_uncommitted(batches, error)
        self.health.degraded("kafka", f"commit_transaction: {error}")
        self._new_producer(error)
        try:
            committed = self._group_offsets(_next_offsets(batches))
        except KafkaException as exc:  # only once a stop was asked for
            return self._stop_uncommitted(batches, exc.args[0])
        if all(committed.get(key, -1) >= offset for key, offset in _next_offsets(batches).items()):
            log.warning("the transaction whose commit failed (%s) was committed; going on", error)
            self.committed += 1
            self.health.ok("kafka")
            return True
        log.warning("the transaction whose commit failed (%s) was not committed; re-reading it", error)
        self.trackers.rollback()
        self._rewind(committed)
        return False

    def _group_offsets(self, keys: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """The group's committed offsets (read_committed: librdkafka waits out pending transactional
        ones), retried while Kafka is away; a partition never committed is missing."""
        partitions = [TopicPartition(t, p) for t, p in sorted(keys)]

        def fetch() -> list[TopicPartition]:
            return self.consumer.committed(partitions, timeout=10)

        found = call_with_retry(
            fetch, health=self.health, dependency="kafka", retry_on=(KafkaException,), stop=self.stop
        )
        return {(tp.topic, tp.partition): tp.offset for tp in found if tp.error is None and tp.offset >= 0}

    def _stop_uncommitted(self, batches: list[Batch], error: KafkaError) -> bool:
        """Stopping: the transaction is left to time out (or to its restarted twin), and nothing after
        its batches is committed by this worker (the restarted one starts at the group's offsets)."""
        log.warning("stopping with an unfinished transaction (%s); it is not committed", error)
        for batch in batches:
            self.holds.hold(batch)
        return False

    def _abort_and_rewind(self, batches: list[Batch], exc: KafkaException) -> None:
        """Abort the transaction and re-read every uncommitted frame.

        A fatal producer error (fenced, epoch bumped after a timeout) gets a fresh producer with
        the same transactional.id; a stop request leaves the transaction to time out (or to be
        aborted by the restarted twin) instead of waiting for a broker that may be away.
        """
        self.trackers.rollback()  # the batches' tracker updates are undone with them
        error = exc.args[0]
        if self.stop.is_set():
            self._stop_uncommitted(batches, error)
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
        self._rewind(None)

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
        if error is not None:
            log.warning("transactional producer unusable (%s); starting a new one", error)
        self._stale = None
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


def _next_offsets(batches: list[Batch]) -> dict[tuple[str, int], int]:
    """Per partition, the offset the transaction of ``batches`` commits."""
    offsets: dict[tuple[str, int], int] = {}
    for batch in batches:
        for key, offset in batch.next_offsets.items():
            offsets[key] = max(offsets.get(key, 0), offset)
    return offsets


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
