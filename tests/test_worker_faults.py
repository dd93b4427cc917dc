"""Inference workers under infrastructure faults and hostile input (real broker, Redis, NanoDet).

Each test injects one fault: a broker killed while a worker drains a backlog, Redis killed under
claim-check reads, a JPEG whose header declares 900 megapixels, a dead letter too big for Kafka,
two exactly-once workers on one host, a subscription to a topic that does not exist.
"""

from __future__ import annotations

import os
import resource
import struct
import subprocess
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import simplejpeg
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

from decoders.runner import run_cameras
from inference import exactly_once, kafka_health
from inference.detector import Detector
from inference.exactly_once import send_offsets_with_deadline
from inference.worker import InferenceWorker, WorkerError
from schemas.dead_letter import parse_dead_letter
from schemas.detections import DetectionsRecord
from schemas.frame import FrameMeta
from sightline.config import CameraSettings, SightlineConfig
from streams.claimcheck import ClaimCheckStore
from streams.kafka import make_producer
from tests.conftest import Stack, outage, write_config
from tests.helpers import read_topic

FRAMES = 160


def _config(stack: Stack, registry: Path, prefix: str, delivery: str = "at-least-once") -> SightlineConfig:
    config = stack.fresh_config(prefix, partitions=2)
    config.inference.registry_dir = registry
    config.inference.group_id = f"{config.topics.frames.name}-workers"
    config.inference.max_batch = 4
    config.inference.max_wait_ms = 20
    config.inference.delivery = delivery  # type: ignore[assignment]
    return config


class Running:
    """A worker on a thread, keeping what it raised."""

    def __init__(self, config: SightlineConfig, worker_id: str, **run: object) -> None:
        self.stop = threading.Event()
        self.worker = InferenceWorker(config, worker_id=worker_id, stop=self.stop)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, kwargs=run, daemon=True)
        self.thread.start()

    def _run(self, **run: object) -> None:
        try:
            self.worker.run(**run)  # type: ignore[arg-type]
        except BaseException as exc:  # noqa: BLE001 - the test asserts on it
            self.error = exc

    def finish(self, timeout: float = 60) -> float:
        started = time.monotonic()
        self.stop.set()
        self.thread.join(timeout)
        if self.thread.is_alive():
            print(self.where())
        return time.monotonic() - started

    def where(self) -> str:
        """The worker thread's stack, to say where it hangs."""
        frame = sys._current_frames().get(self.thread.ident or 0)
        return "".join(traceback.format_stack(frame)) if frame else "not running"

    def __str__(self) -> str:
        w = self.worker
        state = f"{w.stats.frames} frames, {w.stats.records} records, {len(w.in_flight)} batches in flight"
        return f"every frame's detections after the outage ({state}); the worker is at:\n{self.where()}"


def _wait(predicate: Callable[[], bool], timeout: float, what: object) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except KafkaException:  # the test's own reads while the broker restarts
            pass
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def _records(config: SightlineConfig, **kw: object) -> list[DetectionsRecord]:
    messages = read_topic(config, config.topics.detections.name, **kw)  # type: ignore[arg-type]
    return [DetectionsRecord.decode(m.value()) for m in messages]


def _publish_vtest(config: SightlineConfig, vtest_path: Path, frames: int = FRAMES) -> None:
    cams = [CameraSettings(id=f"cam{i}", url=str(vtest_path), fps=10) for i in range(2)]
    run_cameras(config, cams, metrics_port=0, max_frames=frames // 2)


def _expected(frames: int = FRAMES) -> set[tuple[str, int]]:
    return {(f"cam{i}", s) for i in range(2) for s in range(frames // 2)}


def _broker_outage_mid_backlog(
    own_stack: Stack, config: SightlineConfig, running: Running
) -> tuple[list[int], bool]:
    """Kill -9 the broker once the worker is busy, restart it.

    Returns the in-flight batch counts seen during the outage and whether Kafka was reported down.
    """
    _wait(lambda: len(_records(config, read_committed=False)) >= 12, 120, "the first detections")
    seen: list[int] = []
    degraded = False
    crash = outage(own_stack.dev, "kafka", 3)
    while crash.is_alive():
        seen.append(len(running.worker.in_flight))
        degraded = degraded or not running.worker.health.is_up("kafka")
        time.sleep(0.05)
    return seen, degraded


@pytest.mark.chaos
def test_at_least_once_worker_rides_out_a_broker_outage(
    own_stack: Stack, model_registry: Path, vtest_path: Path
) -> None:
    config = _config(own_stack, model_registry, "alo-outage")
    config.inference.max_in_flight_batches = 3
    _publish_vtest(config, vtest_path)
    running = Running(config, "alo")
    in_flight, degraded = _broker_outage_mid_backlog(own_stack, config, running)
    _wait(
        lambda: running.error is not None or {(r.camera_id, r.seq) for r in _records(config)} >= _expected(),
        180,
        running,
    )
    assert running.error is None, f"the worker died: {running.error!r}"
    assert running.finish() < 30
    assert running.worker.health.is_up("kafka"), "healthy again"
    got = Counter((r.camera_id, r.seq) for r in _records(config))
    assert set(got) == _expected(), "no frame lost"
    duplicates = sum(n - 1 for n in got.values())
    assert duplicates <= 4 * config.inference.max_batch * 3, (
        f"duplicates only in the uncommitted tail: {duplicates}"
    )
    assert max(in_flight) <= config.inference.max_in_flight_batches + 1, (
        f"bounded in-flight batches: {max(in_flight)}"
    )
    assert degraded, "Kafka reported down during the outage"


@pytest.mark.chaos
def test_exactly_once_worker_rides_out_a_broker_outage(
    own_stack: Stack, model_registry: Path, vtest_path: Path
) -> None:
    config = _config(own_stack, model_registry, "eo-outage", "exactly-once")
    _publish_vtest(config, vtest_path)
    running = Running(config, "eo")
    _, degraded = _broker_outage_mid_backlog(own_stack, config, running)
    _wait(
        lambda: running.error is not None or len(_records(config)) >= FRAMES,
        180,
        running,
    )
    assert running.error is None, f"the worker died: {running.error!r}"
    assert running.finish() < 30, "stops promptly"
    got = Counter((r.camera_id, r.seq) for r in _records(config, expected=FRAMES))
    assert set(got) == _expected(), "no frame lost"
    assert max(got.values()) == 1, "exactly one committed record per frame"
    assert degraded, "Kafka reported down during the outage"


@pytest.mark.chaos
def test_exactly_once_worker_stops_promptly_mid_outage(
    own_stack: Stack, model_registry: Path, vtest_path: Path
) -> None:
    config = _config(own_stack, model_registry, "eo-stop", "exactly-once")
    frames = 48
    _publish_vtest(config, vtest_path, frames)
    running = Running(config, "eo-stop")
    _wait(lambda: len(_records(config, read_committed=False)) >= 8, 120, "the first detections")
    own_stack.dev.kill("kafka")
    try:
        time.sleep(12)  # past the session timeout: the worker is out of its group
        degraded = not running.worker.health.is_up("kafka")
        assert running.finish(timeout=40) < 35, "SIGTERM (stop) ends it even while the broker is down"
        assert not running.thread.is_alive()
        assert degraded, "reports Kafka as down"
    finally:
        own_stack.dev.start("kafka")
    restarted = Running(config, "eo-stop")
    _wait(lambda: len(_records(config)) >= frames, 180, "a restarted worker finishing the backlog")
    restarted.finish()
    assert restarted.error is None, repr(restarted.error)
    got = Counter((r.camera_id, r.seq) for r in _records(config, expected=frames))
    assert set(got) == _expected(frames) and max(got.values()) == 1


def _claimed(config: SightlineConfig, claims: ClaimCheckStore, camera: str, seq: int, jpeg: bytes) -> list:
    meta = FrameMeta(camera, seq, time.time_ns(), 810, 1080)
    key = claims.put(ClaimCheckStore.key_for(camera, seq, meta.capture_ns), jpeg)
    return [*meta.headers(), ("claim-check", key.encode())]


def test_claim_check_reads_ride_out_a_redis_outage(
    own_stack: Stack, model_registry: Path, bus_jpg: Path
) -> None:
    config = _config(own_stack, model_registry, "redis-outage")
    jpeg = bus_jpg.read_bytes()
    claims = ClaimCheckStore(config.redis.url, ttl_s=3600)
    producer = make_producer(config.kafka)
    frames = 24
    headers = [_claimed(config, claims, "cam1", seq, jpeg) for seq in range(frames)]
    claims.client.bgrewriteaof()
    time.sleep(1.5)  # appendfsync everysec: the images are on disk before Redis is killed
    own_stack.dev.kill("redis")
    running = Running(config, "redis")
    try:
        for seq in range(frames):
            producer.produce(config.topics.frames.name, key=b"cam1", value=b"", headers=headers[seq])
        producer.flush(10)
        _wait(lambda: running.error is not None or not running.worker.health.is_up("redis"), 30, "degraded")
        assert running.error is None, f"the worker died: {running.error!r}"
    finally:
        own_stack.dev.start("redis")
    _wait(lambda: running.error is not None or len(_records(config)) >= frames, 120, "every frame")
    running.finish()
    assert running.error is None, f"the worker died: {running.error!r}"
    assert running.worker.stats.dead_letters == 0, "an outage is not a dead letter"
    assert sorted(r.seq for r in _records(config, expected=frames)) == list(range(frames))
    assert running.worker.health.is_up("redis")


def test_dead_lettered_claim_checked_frame_keeps_its_image(
    own_stack: Stack, model_registry: Path, bus_jpg: Path
) -> None:
    config = _config(own_stack, model_registry, "claim-dlq")
    config.cameras = [CameraSettings(id="cam1", url="rtsp://10.0.0.1/x")]
    config.inference.reject_unknown_cameras = True
    jpeg = bus_jpg.read_bytes()
    claims = ClaimCheckStore(config.redis.url, ttl_s=60)
    meta = FrameMeta("cam9", 0, time.time_ns(), 810, 1080)
    key = claims.put(ClaimCheckStore.key_for("cam9", 0, meta.capture_ns), jpeg)
    producer = make_producer(config.kafka)
    producer.produce(
        config.topics.frames.name,
        key=b"cam9",
        value=b"",
        headers=[*meta.headers(), ("claim-check", key.encode())],
    )
    producer.flush(10)
    InferenceWorker(config, worker_id="claim-dlq").run(max_idle_s=3)
    [letter] = read_topic(config, config.topics.dead_letter.name, expected=1)
    assert "unknown camera" in parse_dead_letter(letter.headers()).reason
    if not letter.value():
        assert claims.client.ttl(key) == -1, "the parked image no longer expires"
    kept = letter.value() or claims.client.get(key)
    assert kept == jpeg, "the image of a dead-lettered claim-checked frame can be replayed"


def test_claim_check_ttl_covers_frames_retention() -> None:
    config = SightlineConfig()
    assert config.frames.claim_check_ttl_s * 1000 >= config.topics.frames.retention_ms
    with pytest.raises(ValueError, match="claim_check_ttl_s"):
        SightlineConfig(
            frames={"claim_check_ttl_s": 60}, topics={"frames": {"name": "f", "retention_ms": 3_600_000}}
        )


def _jpeg_declaring(width: int, height: int) -> bytes:
    """A tiny valid JPEG whose SOF header is patched to declare `width` x `height`."""
    small = simplejpeg.encode_jpeg(np.zeros((8, 8, 1), np.uint8), quality=50, colorspace="GRAY")
    sof = small.index(b"\xff\xc0")
    return small[: sof + 5] + struct.pack(">HH", height, width) + small[sof + 9 :]


def test_bad_input_is_dead_lettered_cheaply(own_stack: Stack, model_registry: Path, bus_jpg: Path) -> None:
    config = _config(own_stack, model_registry, "badin")
    bomb = _jpeg_declaring(30000, 30000)
    assert len(bomb) < 400
    good = FrameMeta("cam1", 0, time.time_ns(), 810, 1080).headers()

    def with_header(name: str, value: bytes, base: list = good) -> list:
        return [(k, value if k == name else v) for k, v in base]

    bad = {
        "bomb": (bomb, FrameMeta("cam1", 1, time.time_ns(), 30000, 30000).headers()),
        "bomb, small headers": (bomb, FrameMeta("cam1", 2, time.time_ns(), 640, 480).headers()),
        "capture-ns": (bus_jpg.read_bytes(), with_header("capture-ns", b"99999999999999999999")),
        "seq": (bus_jpg.read_bytes(), with_header("seq", b"9999999999999999999")),
        "long reason": (bus_jpg.read_bytes(), with_header("encoding", b"x" * 20_000)),
        "empty": (b"", good),
    }
    producer = make_producer(config.kafka)
    for value, headers in bad.values():
        producer.produce(config.topics.frames.name, key=b"cam1", value=value, headers=headers)
    producer.flush(10)
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    stats = InferenceWorker(config, worker_id="badin").run(max_idle_s=3)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024
    assert stats.records == 0 and stats.dead_letters == len(bad)
    reasons = [
        parse_dead_letter(m.headers()).reason for m in read_topic(config, config.topics.dead_letter.name)
    ]
    assert len(reasons) == len(bad)
    assert sum("30000x30000" in r and "pixel" in r for r in reasons) == 2, reasons
    assert any("capture-ns" in r for r in reasons) and any("'seq'" in r for r in reasons), reasons
    assert any(r == "empty value" for r in reasons), reasons
    assert max(len(r) for r in reasons) <= 500, "reasons are truncated"
    assert grown_mb < 500, f"the header check comes before decoding (peak RSS grew {grown_mb:.0f} MB)"


def test_a_dead_letter_too_big_for_kafka_does_not_kill_the_worker(
    own_stack: Stack, model_registry: Path, bus_jpg: Path
) -> None:
    config = _config(own_stack, model_registry, "poison")
    config.frames.max_frame_bytes = 500_000
    topic = config.topics.frames.name
    admin = AdminClient({"bootstrap.servers": config.kafka.bootstrap_servers})
    bigger = ConfigEntry("max.message.bytes", "4000000", incremental_operation=AlterConfigOpType.SET)
    resource_ = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[bigger])
    for future in admin.incremental_alter_configs([resource_]).values():
        future.result(10)
    big = config.kafka.model_copy(update={"message_max_bytes": 4_000_000})
    jpeg = bus_jpg.read_bytes()
    producer = make_producer(big)
    huge = jpeg + b"\0" * 2_000_000  # over the limit the worker's producer (and the DLQ topic) takes
    producer.produce(topic, key=b"cam1", value=huge, headers=FrameMeta("cam1", 0, 1, 810, 1080).headers())
    producer.produce(topic, key=b"cam1", value=jpeg, headers=FrameMeta("cam1", 1, 2, 810, 1080).headers())
    producer.flush(10)
    worker = InferenceWorker(config, worker_id="poison")
    stats = worker.run(max_idle_s=3)
    assert stats.dead_letters == 1 and stats.records == 1
    [letter] = read_topic(config, config.topics.dead_letter.name, expected=1)
    reason = parse_dead_letter(letter.headers()).reason
    assert "oversized frame" in reason, reason
    assert len(letter.value() or b"") < 1_000_000


@pytest.mark.chaos
def test_two_exactly_once_workers_on_one_host_do_not_fence_each_other(
    own_stack: Stack, model_registry: Path, vtest_path: Path, tmp_path: Path
) -> None:
    config = _config(own_stack, model_registry, "twins", "exactly-once")
    _publish_vtest(config, vtest_path)
    config_file = write_config(config, tmp_path / "config.yaml")
    log = tmp_path / "workers.log"
    command = [sys.executable, "-m", "sightline.cli", "-c", str(config_file), "infer", "--max-idle", "6"]
    env = {k: v for k, v in os.environ.items() if k != "SIGHTLINE_WORKER_ID"}
    env["SIGHTLINE_METRICS__INFERENCE_PORT"] = "0"

    def spawn() -> subprocess.Popen[bytes]:
        return subprocess.Popen(command, stdout=log.open("ab"), stderr=subprocess.STDOUT, env=env)

    first = spawn()
    _wait(lambda: len(_records(config, read_committed=False)) >= 8, 120, "the first worker's detections")
    second = spawn()  # same host, no --worker-id: joins while the first is mid-backlog
    codes = [first.wait(timeout=240), second.wait(timeout=240)]
    assert codes == [0, 0], log.read_text()[-3000:]
    got = Counter((r.camera_id, r.seq) for r in _records(config, expected=FRAMES))
    assert set(got) == _expected() and max(got.values()) == 1


def test_a_missing_topic_fails_the_worker(
    own_stack: Stack, model_registry: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(own_stack, model_registry, "notopic")
    config.topics.frames.name = f"{config.topics.frames.name}-missing"
    monkeypatch.setattr(kafka_health, "UNKNOWN_TOPIC_GRACE_S", 2.0)
    running = Running(config, "notopic")
    running.thread.join(30)
    alive = running.thread.is_alive()
    running.finish()
    assert not alive, "the worker gave up instead of logging forever"
    assert isinstance(running.error, WorkerError) and "missing" in str(running.error), repr(running.error)


def test_a_send_offsets_call_that_ignores_its_timeout_is_cut_off() -> None:
    """librdkafka#5456: send_offsets_to_transaction can block past its timeout while the group
    coordinator is away; the worker must get a fatal error it recovers from, not hang."""
    released = threading.Event()

    class CoordinatorAway:  # the one call librdkafka lets block forever, and nothing else
        def send_offsets_to_transaction(self, offsets: list, group: object, timeout: float) -> None:
            released.wait(30)

    started = time.monotonic()
    with pytest.raises(KafkaException) as caught:
        send_offsets_with_deadline(CoordinatorAway(), [], None, timeout_s=0.2, grace_s=0.3)  # type: ignore[arg-type]
    released.set()
    assert time.monotonic() - started < 5
    assert caught.value.args[0].fatal(), "a fatal error makes the worker start a new producer"


@pytest.mark.chaos
def test_a_refused_dead_letter_stops_the_worker_without_committing_past_its_batch(
    own_stack: Stack, model_registry: Path, bus_jpg: Path
) -> None:
    """At-least-once: the broker refuses a batch's dead letter in its delivery report (the
    dead-letter topic takes smaller records than the frames topic), so the worker stops; closing
    its consumer (revoke, final drain) must not commit the acknowledged batches after that one."""
    config = _config(own_stack, model_registry, "dlq-refused")
    admin = AdminClient({"bootstrap.servers": config.kafka.bootstrap_servers})
    smaller = ConfigEntry("max.message.bytes", "50000", incremental_operation=AlterConfigOpType.SET)
    dlq = ConfigResource(
        ConfigResource.Type.TOPIC, config.topics.dead_letter.name, incremental_configs=[smaller]
    )
    for future in admin.incremental_alter_configs([dlq]).values():
        future.result(10)
    jpeg = bus_jpg.read_bytes()
    assert len(jpeg) > 50_000, "the dead letter carries the frame's value: too big for its topic"
    producer = make_producer(config.kafka)
    where: list[tuple[int, int]] = []
    for seq in range(12):
        headers = FrameMeta("cam1", seq, time.time_ns(), 810, 1080).headers()
        if seq == 4:  # refused on arrival (contract), dead-lettered with its value
            headers = [(k, b"bmp" if k == "encoding" else v) for k, v in headers]
        producer.produce(
            config.topics.frames.name,
            key=b"cam1",
            value=jpeg,
            headers=headers,
            on_delivery=lambda err, msg, seq=seq: seq == 4 and where.append((msg.partition(), msg.offset())),
        )
    producer.flush(10)
    [(partition, bad_offset)] = where
    with pytest.raises(WorkerError, match="not committing"):
        InferenceWorker(config, worker_id="dlq-refused").run(max_idle_s=5)
    group = Consumer(
        {"bootstrap.servers": config.kafka.bootstrap_servers, "group.id": config.inference.group_id}
    )
    try:
        [committed] = group.committed([TopicPartition(config.topics.frames.name, partition)], timeout=10)
    finally:
        group.close()
    assert committed.offset <= bad_offset, (
        f"committed up to {committed.offset}, past the failed frame at {bad_offset}: its batch is lost"
    )


@pytest.mark.chaos
def test_a_stop_is_prompt_with_a_hung_engine_and_nothing_is_committed_past_it(
    own_stack: Stack, model_registry: Path, bus_jpg: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An engine call that never returns fills the pipeline; the consumer loop then waits to hand
    over the next batch. A stop (SIGTERM) must end that wait, and the batches never finished must
    be read again, once, by the next worker."""
    config = _config(own_stack, model_registry, "hung-stop", "exactly-once")
    config.metrics.liveness_timeout_s = 1.5
    config.inference.max_batch = 1  # one batch per frame: the pipeline fills after a few frames
    config.inference.max_wait_ms = 5
    jpeg = bus_jpg.read_bytes()
    producer = make_producer(config.kafka)

    def publish(seqs: range) -> None:
        for seq in seqs:
            meta = FrameMeta("cam1", seq, time.time_ns(), 810, 1080)
            producer.produce(config.topics.frames.name, key=b"cam1", value=jpeg, headers=meta.headers())
        producer.flush(10)

    hang, release = threading.Event(), threading.Event()
    infer = Detector.infer

    def hung(self: Detector, prepared: object) -> object:
        if hang.is_set():
            release.wait(120)  # a GPU call that never comes back
        return infer(self, prepared)

    monkeypatch.setattr(Detector, "infer", hung)
    frames = 16
    publish(range(4))
    running = Running(config, "hung-stop")
    try:
        _wait(lambda: running.worker.stats.records >= 4, 60, "the first detections")
        hang.set()
        publish(range(4, frames))
        _wait(lambda: "_close_batch" in running.where(), 60, "the loop waiting for room in the pipeline")
        time.sleep(2 * config.metrics.liveness_timeout_s)
        took = running.finish(timeout=20)
        assert not running.thread.is_alive() and took < 15, f"the stop took {took:.1f} s"
    finally:
        release.set()
        hang.clear()
        running.thread.join(60)
    assert running.error is None, repr(running.error)
    InferenceWorker(config, worker_id="hung-stop").run(max_idle_s=3)
    got = Counter((r.camera_id, r.seq) for r in _records(config, expected=frames))
    assert got == Counter(("cam1", s) for s in range(frames)), "every frame once, none skipped"


@pytest.mark.chaos
def test_exactly_once_worker_is_back_promptly_after_a_broker_restart(
    own_stack: Stack, model_registry: Path, bus_jpg: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 21's open finding: kill -9 of the broker while no transaction is open, past the
    session timeout, then the broker back. The transactional producer kept the group coordinator
    it had looked up before the outage, and its first ``send_offsets_to_transaction`` afterwards
    waited on that stale coordinator past its timeout (librdkafka#5456, #5511) until the worker cut
    it off 15 s later: 15 s more without detections, with the consumer thread blocked, on every
    broker restart. The worker must not hang there."""
    config = _config(own_stack, model_registry, "eo-restart", "exactly-once")
    calls: list[tuple[float, float]] = []  # (monotonic start, seconds) of each send_offsets call
    deadline_call = exactly_once.send_offsets_with_deadline

    def timed(*args: object, **kwargs: object) -> None:
        started = time.monotonic()
        try:
            deadline_call(*args, **kwargs)  # type: ignore[arg-type]
        finally:
            calls.append((started, time.monotonic() - started))

    monkeypatch.setattr(exactly_once, "send_offsets_with_deadline", timed)
    jpeg = bus_jpg.read_bytes()

    def publish(seqs: range) -> None:
        producer = make_producer(config.kafka)
        for seq in seqs:
            meta = FrameMeta("cam1", seq, time.time_ns(), 810, 1080)
            producer.produce(config.topics.frames.name, key=b"cam1", value=jpeg, headers=meta.headers())
        assert producer.flush(60) == 0

    publish(range(8))
    running = Running(config, "eo-restart")
    try:
        _wait(
            lambda: running.worker.stats.records >= 8 and not running.worker.in_flight,
            120,
            "the first detections",
        )
        time.sleep(1)  # committed; no transaction open when the broker dies
        own_stack.dev.kill("kafka")
        time.sleep(15)  # past the session timeout: the worker's partitions are lost
        own_stack.dev.start("kafka")
        back = time.monotonic()
        publish(range(8, 16))
        _wait(
            lambda: running.error is not None or len(_records(config)) >= 16,
            90,
            running,
        )
        recovered_s = time.monotonic() - back
        assert running.error is None, f"the worker died: {running.error!r}"
        hung = [round(s, 1) for started, s in calls if started >= back and s > 10]
        assert not hung, f"send_offsets_to_transaction blocked {hung} s after the broker came back"
        assert recovered_s < 25, f"new frames committed {recovered_s:.1f} s after the broker came back"
    finally:
        running.finish()
    got = Counter((r.camera_id, r.seq) for r in _records(config, expected=16))
    assert got == Counter(("cam1", s) for s in range(16)), "every frame once"
