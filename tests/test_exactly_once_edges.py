"""Where an exactly-once worker could commit a frame twice or commit past one (issue 21).

Each test drives a real worker against a real broker and Redis into one precise sequence: a commit
that times out after the coordinator got EndTxn, a stop while Redis is down with a later batch
still finishing, a rebalance served between the two fetches that open a batch. The faults are the
real ones (a broker frozen while a commit waits for its answer, Redis killed, a second group
member joining) placed at the moment that matters by wrapping one confluent_kafka method.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from inference import exactly_once, worker
from inference.worker import InferenceWorker
from schemas.detections import DetectionsRecord
from schemas.frame import FrameMeta
from sightline.config import SightlineConfig
from streams.claimcheck import ClaimCheckStore
from streams.kafka import make_producer
from tests.conftest import Stack
from tests.helpers import read_topic

pytestmark = pytest.mark.chaos


def _config(stack: Stack, registry: Path, prefix: str) -> SightlineConfig:
    config = stack.fresh_config(prefix, partitions=1)
    config.inference.registry_dir = registry
    config.inference.group_id = f"{config.topics.frames.name}-workers"
    config.inference.delivery = "exactly-once"
    config.inference.max_batch = 4
    config.inference.max_wait_ms = 20
    return config


def _publish(
    config: SightlineConfig, jpeg: bytes, seqs: range, claims: ClaimCheckStore | None = None
) -> None:
    """Frames of camera cam1 (bus.jpg), inline or through the claim check."""
    producer = make_producer(config.kafka)
    for seq in seqs:
        meta = FrameMeta("cam1", seq, time.time_ns(), 810, 1080)
        headers, value = meta.headers(), jpeg
        if claims is not None:
            key = claims.put(ClaimCheckStore.key_for("cam1", seq, meta.capture_ns), jpeg)
            headers, value = [*headers, ("claim-check", key.encode())], b""
        producer.produce(config.topics.frames.name, key=b"cam1", value=value, headers=headers)
    producer.flush(10)


def _seqs(config: SightlineConfig, expected: int) -> Counter[int]:
    """How many committed detections records each frame has."""
    messages = read_topic(config, config.topics.detections.name, expected=expected, max_wait=20)
    return Counter(DetectionsRecord.decode(m.value()).seq for m in messages)


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


# -- 1. a commit that timed out is not an abort ----------------------------------------------------
class CommitInDoubt(Producer):
    """The first transaction's commit times out after EndTxn went out, as when the coordinator
    answers late: the broker is frozen (SIGSTOP) while the real call sends EndTxn and times out
    ("retriable, the commit continues in the background"), then thawed, and it completes the
    commit. With ``give_up`` every later call on that producer times out as well, so the worker
    cannot learn the outcome from it."""

    broker_pid: ClassVar[int] = 0
    give_up: ClassVar[bool] = False
    injected: ClassVar[list[KafkaError]] = []

    def commit_transaction(self, *args: Any) -> None:
        if getattr(self, "in_doubt", False) and self.give_up:
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "commit still in doubt", retriable=True))
        if self.injected:
            return super().commit_transaction(*args)
        self.flush(10)  # the records are in: only EndTxn is left
        os.killpg(self.broker_pid, signal.SIGSTOP)
        try:
            super().commit_transaction(2)
        except KafkaException as exc:
            self.injected.append(exc.args[0])
            self.in_doubt = True
            raise
        finally:
            os.killpg(self.broker_pid, signal.SIGCONT)
            time.sleep(2)  # the broker handles EndTxn: the commit completes in the background
        return None


def _committed_offset(config: SightlineConfig) -> int:
    """The worker group's committed offset of the frames partition (stable: no pending commit)."""
    group = Consumer(
        {
            "bootstrap.servers": config.kafka.bootstrap_servers,
            "group.id": config.inference.group_id,
            "isolation.level": "read_committed",
        }
    )
    try:
        [committed] = group.committed([TopicPartition(config.topics.frames.name, 0)], timeout=10)
    finally:
        group.close()
    return committed.offset


@pytest.mark.parametrize("give_up", [False, True], ids=["resumed", "outcome-unknown"])
def test_a_commit_that_timed_out_after_endtxn_is_not_done_twice(
    own_stack: Stack, model_registry: Path, bus_jpg: Path, monkeypatch: pytest.MonkeyPatch, give_up: bool
) -> None:
    config = _config(own_stack, model_registry, f"eo-commit-{int(give_up)}")
    frames = 16
    _publish(config, bus_jpg.read_bytes(), range(frames))
    [broker] = [s.pid for s in own_stack.dev.status() if s.name == "kafka"]
    assert broker is not None
    monkeypatch.setattr(CommitInDoubt, "broker_pid", broker)
    monkeypatch.setattr(CommitInDoubt, "give_up", give_up)
    monkeypatch.setattr(CommitInDoubt, "injected", [])
    monkeypatch.setattr(exactly_once, "Producer", CommitInDoubt)
    InferenceWorker(config, worker_id=f"eo-commit-{int(give_up)}").run(max_idle_s=6)
    [error] = CommitInDoubt.injected
    assert error.code() == KafkaError._TIMED_OUT and error.retriable(), error
    assert _seqs(config, frames) == Counter(range(frames)), "every frame committed exactly once"
    assert _committed_offset(config) == frames


# -- 2. stopping while Redis is down ---------------------------------------------------------------
def test_stopping_while_redis_is_down_commits_nothing_past_the_failed_batch(
    own_stack: Stack, model_registry: Path, bus_jpg: Path
) -> None:
    """Batch N (claim-checked frames) fails when the stop ends its Redis retries; batch N+1 (inline
    frames, same partition) still finishes in the final drain and must not be committed."""
    config = _config(own_stack, model_registry, "eo-stop-redis")
    config.inference.max_in_flight_batches = 2  # one batch per transaction: N+1 would commit on its own
    jpeg = bus_jpg.read_bytes()
    claims = ClaimCheckStore(config.redis.url, ttl_s=3600)
    _publish(config, jpeg, range(4), claims)
    claims.client.bgrewriteaof()
    time.sleep(1.5)  # appendfsync everysec: the images survive the kill
    _publish(config, jpeg, range(4, 8))
    own_stack.dev.kill("redis")
    try:
        stop = threading.Event()
        first = InferenceWorker(config, worker_id="eo-stop-redis", stop=stop)
        thread = threading.Thread(target=first.run, daemon=True)
        thread.start()
        _wait(lambda: first.stats.frames >= 8 and not first.health.is_up("redis"), 60, "both batches")
        stop.set()
        thread.join(60)
        assert not thread.is_alive()
    finally:
        own_stack.dev.start("redis")
    InferenceWorker(config, worker_id="eo-stop-redis").run(max_idle_s=3)
    assert _seqs(config, 8) == Counter(range(8)), "the failed batch's frames are read again, once"


# -- 4. a frame fetched just before a revoke -------------------------------------------------------
class RebalanceBetweenFetches(Consumer):
    """Once: right after the first fetch of a new batch returned a frame, a second member joins
    the group and the rebalance is left pending, so the worker's next fetch (the one that fills
    the batch, timeout 0) serves the revoke."""

    group: ClassVar[dict[str, Any]] = {}
    phase: ClassVar[str] = "armed"  # -> "between" -> "second" -> "done"
    joiner_stop: ClassVar[threading.Event] = threading.Event()

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list:
        cls = RebalanceBetweenFetches
        if cls.phase == "between":
            cls.phase = "second"
            try:
                return super().consume(num_messages, timeout)
            finally:
                cls.phase = "done"
        messages = super().consume(num_messages, timeout)
        if cls.phase == "armed" and num_messages == 1 and messages:
            threading.Thread(target=_join_group, args=(cls.group, cls.joiner_stop), daemon=True).start()
            time.sleep(5)  # the joiner's JoinGroup, then our heartbeat (2 s) learns of the rebalance
            cls.phase = "between"
        return messages


def _join_group(group: dict[str, Any], stop: threading.Event) -> None:
    """A second member of the worker's group that takes no partition (its id sorts after the
    worker's, and the range assignor gives the one partition to the first member) and commits
    nothing: it only makes the group rebalance."""
    topic = group["topic"]
    config = {k: v for k, v in group.items() if k != "topic"}
    joiner = Consumer({**config, "client.id": "zzz-joiner", "enable.auto.commit": False})
    joiner.subscribe([topic])
    while not stop.is_set():
        joiner.poll(0.2)
    joiner.close()


def test_a_frame_fetched_just_before_a_revoke_is_not_processed_after_it(
    own_stack: Stack, model_registry: Path, bus_jpg: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(own_stack, model_registry, "eo-revoke")
    # Long enough that the frame's transaction comes after the re-assignment read the committed
    # offset: that read then still says "start at the frame", and the frame is fetched again.
    config.inference.transaction_interval_ms = 2000
    frames = 8
    _publish(config, bus_jpg.read_bytes(), range(frames))
    group = {
        "bootstrap.servers": config.kafka.bootstrap_servers,
        "group.id": config.inference.group_id,
        "topic": config.topics.frames.name,
    }
    monkeypatch.setattr(RebalanceBetweenFetches, "group", group)
    monkeypatch.setattr(RebalanceBetweenFetches, "phase", "armed")
    joiner_stop = threading.Event()
    monkeypatch.setattr(RebalanceBetweenFetches, "joiner_stop", joiner_stop)
    monkeypatch.setattr(worker, "Consumer", RebalanceBetweenFetches)
    revoked_in: list[str] = []
    on_revoke = InferenceWorker._on_revoke

    def recording(self: InferenceWorker, consumer: Consumer, partitions: list) -> None:
        revoked_in.append(RebalanceBetweenFetches.phase)
        on_revoke(self, consumer, partitions)

    monkeypatch.setattr(InferenceWorker, "_on_revoke", recording)
    stop = threading.Event()
    running = InferenceWorker(config, worker_id="eo-revoke", stop=stop)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    try:
        _wait(lambda: RebalanceBetweenFetches.phase == "done", 60, "the rebalance between two fetches")
        _wait(lambda: running.stats.records >= frames, 60, "every frame's detections")
        time.sleep(config.inference.transaction_interval_ms / 1e3 + 1)  # a second copy would commit now
    finally:
        joiner_stop.set()
        stop.set()
        thread.join(60)
    assert "second" in revoked_in, f"the revoke was served by the batch's second fetch: {revoked_in}"
    assert _seqs(config, frames) == Counter(range(frames)), "every frame committed exactly once"
