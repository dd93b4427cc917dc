"""Decoder faults: Kafka and Redis outages, restarts (seq never repeats), kill -9, flapping cameras."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import KafkaException
from prometheus_client import REGISTRY

from decoders.camera import CameraRunner
from decoders.errors import SourceError, StreamStalled
from decoders.publisher import FramePublisher, LiveQueue
from decoders.resume import find_last_frame, key_partition
from decoders.runner import run_cameras
from inference.frames import validate_frame_record
from schemas.camera_event import CameraEvent
from schemas.frame import FrameMeta
from sightline.config import CameraSettings, SightlineConfig
from streams.claimcheck import ClaimCheckStore
from streams.devinfra import free_port
from streams.kafka import make_producer
from tests.conftest import Stack, outage, write_config
from tests.helpers import read_topic

VTEST_PASS_S = 79.5  # vtest.avi: 795 frames at 10 fps, the last at 79.4 s


def _frames(config: SightlineConfig, expected: int | None = None, max_wait: float = 60) -> list[FrameMeta]:
    records = read_topic(config, config.topics.frames.name, expected=expected, max_wait=max_wait)
    return [validate_frame_record(r.key(), r.value(), r.headers()) for r in records]


def _ts(meta: FrameMeta) -> float | None:
    return None if meta.stream_ts is None else round(meta.stream_ts, 3)


def _wait_for_frames(config: SightlineConfig, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if len(read_topic(config, config.topics.frames.name)) >= count:
                return
        except KafkaException:
            pass  # a topic created a moment ago may not have its leader yet
        time.sleep(0.3)
    raise AssertionError(f"fewer than {count} frames after {timeout}s")


def _dependency_up(dependency: str) -> float | None:
    return REGISTRY.get_sample_value(
        "sightline_dependency_up", {"component": "decoder", "dependency": dependency}
    )


def _in_thread(
    config: SightlineConfig, camera: CameraSettings, **kw: object
) -> tuple[threading.Thread, dict]:
    result: dict = {}
    thread = threading.Thread(
        target=lambda: result.update(run_cameras(config, [camera], metrics_port=0, **kw)),  # type: ignore[arg-type]
        name="decoder",
    )
    thread.start()
    return thread, result


# -- Kafka and Redis outages ---------------------------------------------------------------


@pytest.mark.chaos
def test_file_camera_rides_out_a_broker_kill(own_stack: Stack, vtest_path: Path) -> None:
    """Longer than the decoder used to wait for Kafka at the end of a file (30 s)."""
    config = own_stack.fresh_config("kafka-out")
    frames = 30
    camera = CameraSettings(id="cam-k", url=str(vtest_path), fps=5)
    thread, result = _in_thread(config, camera, max_frames=frames, realtime=True)
    try:
        _wait_for_frames(config, 8)  # frames flow before the kill
        own_stack.dev.kill("kafka")
        time.sleep(float(os.environ.get("SIGHTLINE_TEST_KAFKA_OUTAGE_S", "35")))
        assert thread.is_alive(), "the decoder waits for Kafka instead of exiting"
        assert _dependency_up("kafka") == 0, "it reports Kafka as unavailable"
    finally:
        own_stack.dev.start("kafka")
    thread.join(120)
    assert not thread.is_alive()
    assert result["cam-k"].error is None and result["cam-k"].sent == frames
    assert [m.seq for m in _frames(config, expected=frames)] == list(range(frames)), (
        "each frame once, in order"
    )
    assert _dependency_up("kafka") == 1, "and Kafka as back"


def test_claim_check_rides_out_a_redis_kill(own_stack: Stack, vtest_path: Path) -> None:
    config = own_stack.fresh_config("redis-out")
    config.frames.inline_max_bytes = 1024  # every frame goes through the claim check
    frames = 40
    camera = CameraSettings(id="cam-r", url=str(vtest_path), fps=10)
    thread, result = _in_thread(config, camera, max_frames=frames, realtime=True)
    _wait_for_frames(config, 5)
    outage(own_stack.dev, "redis", 3).join()
    thread.join(60)
    assert result["cam-r"].error is None, "the camera is not put in the error state"
    metas = _frames(config, expected=frames)
    assert [m.seq for m in metas] == list(range(frames)), "no frame lost"
    store = ClaimCheckStore(config.redis.url, 60)
    assert all(store.get(m.claim_check or "") for m in metas), "every claim check resolves"
    assert _dependency_up("redis") == 1


def test_live_camera_keeps_its_newest_frames_while_redis_is_away(stack: Stack) -> None:
    """A live source never waits for Redis: drop-oldest, counted, then it drains by itself."""
    config = stack.fresh_config("live-redis")
    config.frames.inline_max_bytes = 1024
    away = ClaimCheckStore(f"redis://127.0.0.1:{free_port()}/0", 60)  # nothing listens there
    publisher = FramePublisher(config, make_producer(config.kafka, "test-live-redis"), away)
    queue = LiveQueue(publisher, "live-r", capacity=8)
    payload = b"\xff\xd8\xff" + bytes(4000)

    def dropped() -> float:
        labels = {"camera": "live-r", "reason": "queue_full"}
        return REGISTRY.get_sample_value("sightline_decoder_frames_dropped_total", labels) or 0.0

    before = dropped()
    for seq in range(20):
        queue.publish(FrameMeta("live-r", seq, time.time_ns(), 64, 48), payload)
    assert [p.meta.seq for p in queue.pending] == list(range(12, 20)), "the newest frames wait"
    assert dropped() - before == 12
    assert _dependency_up("redis") == 0
    publisher.claims = ClaimCheckStore(config.redis.url, 60)  # Redis is back
    time.sleep(1.1)  # the queue tries Redis again once a second, not on every frame
    queue.publish(FrameMeta("live-r", 20, time.time_ns(), 64, 48), payload)
    assert not queue.pending
    publisher.close()
    assert [m.seq for m in _frames(config, expected=9)] == list(range(12, 21))
    assert _dependency_up("redis") == 1


# -- restarts: seq never repeats, a file resumes where it was ------------------------------


def test_restarted_file_camera_resumes_and_a_finished_one_publishes_nothing(
    stack: Stack, vtest_path: Path
) -> None:
    config = stack.fresh_config("resume", partitions=3)
    camera = CameraSettings(id="cam-resume", url=str(vtest_path), fps=1)  # 80 frames: t = 0..79 s
    assert run_cameras(config, [camera], metrics_port=0, max_frames=30)["cam-resume"].sent == 30
    assert run_cameras(config, [camera], metrics_port=0)["cam-resume"].sent == 50
    again = run_cameras(config, [camera], metrics_port=0)["cam-resume"]
    assert again.sent == 0 and again.error is None, "a file published to its end publishes nothing more"
    records = read_topic(config, config.topics.frames.name, expected=80)
    metas = [validate_frame_record(r.key(), r.value(), r.headers()) for r in records]
    assert [m.seq for m in metas] == list(range(80))
    assert [m.stream_ts for m in metas] == [float(i) for i in range(80)], "no gap, no repeat"
    capture = [m.capture_ns for m in metas]
    assert capture == sorted(capture) and len(set(capture)) == 80
    assert {r.partition() for r in records} == {key_partition(b"cam-resume", 3)}
    events = [CameraEvent.decode(m.value()) for m in read_topic(config, config.topics.camera_events.name)]
    assert "already published" in (events[-1].reason or ""), "and says so"
    run_cameras(config, [camera], metrics_port=0, max_frames=3, rewind=True)
    rewound = _frames(config, expected=83)[80:]
    assert [(m.seq, m.stream_ts) for m in rewound] == [(80, 0.0), (81, 1.0), (82, 2.0)], "--rewind"


def test_restarted_looping_file_skips_whole_passes_and_resumes_mid_pass(
    stack: Stack, vtest_path: Path
) -> None:
    config = stack.fresh_config("resume-loop")
    camera = CameraSettings(id="cam-loop", url=str(vtest_path), fps=1, loop=True)
    run_cameras(config, [camera], metrics_port=0, max_frames=180)  # passes 0 and 1, 20 of pass 2
    run_cameras(config, [camera], metrics_port=0, max_frames=20)
    metas = _frames(config, expected=200)
    assert [m.seq for m in metas] == list(range(200))
    expected = [round(p * VTEST_PASS_S + i, 3) for p in range(3) for i in range(80)][:200]
    assert [_ts(m) for m in metas] == expected


def test_resume_search_reaches_past_other_cameras_records_up_to_the_lookback(stack: Stack) -> None:
    config = stack.fresh_config("resume-scan", partitions=1)
    topic = config.topics.frames.name
    producer = make_producer(config.kafka, "test-resume-scan")
    jpeg = b"\xff\xd8\xff" + bytes(61)

    def put(camera: str, seq: int) -> None:
        meta = FrameMeta(camera, seq, 1_000 + seq, 2, 2, "jpeg", seq / 10)
        producer.produce(topic, key=camera.encode(), value=jpeg, headers=meta.headers())

    for seq in range(5):
        put("cam-old", seq)
    for seq in range(300):  # cam-old's last frame is 301 records back: the third window
        put("cam-busy", seq)
    assert producer.flush(30) == 0
    last = find_last_frame(config, "cam-old")
    assert last is not None and (last.seq, last.stream_ts, last.capture_ns) == (4, 0.4, 1_004)
    busy = find_last_frame(config, "cam-busy")
    assert busy is not None and busy.seq == 299
    assert find_last_frame(config, "cam-old", lookback=300) is None, "searched no further than asked"
    assert find_last_frame(config, "cam-new") is None


def _decode(config_file: Path, vtest_path: Path, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "sightline.cli", "-c", str(config_file), "decode"]
        + ["--source", str(vtest_path), "--camera", "cam-kill", "--fps", "5", *extra],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "SIGHTLINE_METRICS__DECODER_PORT": "0"},
    )


def test_kill_9_of_the_decoder_then_restart_has_no_gap_or_repeat(
    stack: Stack, vtest_path: Path, tmp_path: Path
) -> None:
    config = stack.fresh_config("dec-kill")
    config_file = write_config(config, tmp_path / "config.yaml")
    log = tmp_path / "decoder.log"
    first = _decode(config_file, vtest_path, log, "--realtime")
    try:
        _wait_for_frames(config, 10)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    partial = len(_frames(config))
    assert 10 <= partial < 398, "killed mid-file"
    assert _decode(config_file, vtest_path, log).wait(timeout=120) == 0, log.read_text()[-3000:]
    metas = _frames(config, expected=398)  # 795 frames at 10 fps sampled to 5 fps
    assert [m.seq for m in metas] == list(range(398)), log.read_text()[-3000:]
    assert [_ts(m) for m in metas] == [round(i * 0.2, 3) for i in range(398)]


# -- RTSP reconnect backoff ------------------------------------------------------------------


class _Events:
    """The publisher as the reconnect loop uses it: camera events only."""

    def __init__(self) -> None:
        self.events: list[CameraEvent] = []

    def publish_event(self, event: CameraEvent) -> None:
        self.events.append(event)

    def publish_health(self, record: object) -> None:
        pass


class _Container:
    def close(self) -> None:
        pass


def test_reconnect_backoff_starts_over_after_a_good_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    camera = CameraSettings(
        id="flappy", url="rtsp://127.0.0.1:1/x", reconnect_initial_s=1, reconnect_max_s=1000
    )
    stop = threading.Event()
    runner = CameraRunner(camera, _Events(), stop)  # type: ignore[arg-type]
    # Each connection: None = cannot open, N = opens, decodes N frames, then the stream stalls.
    script = iter([None, None, None, 5, 5, 0, None])
    frames = 0
    waits: list[tuple[int, float]] = []

    def open_source(_camera: CameraSettings) -> tuple[_Container, None]:
        nonlocal frames
        frames = next(script)
        if frames is None:
            raise SourceError("cannot open")
        return _Container(), None

    def pump(*_args: object, **_kw: object) -> float:
        runner.stats.decoded += frames
        raise StreamStalled("stream ended")

    def wait(_exc: Exception, attempt: int, delay: float) -> None:
        waits.append((attempt, delay))
        if len(waits) == 7:
            stop.set()

    monkeypatch.setattr("decoders.camera.open_source", open_source)
    monkeypatch.setattr(runner, "_pump", pump)
    monkeypatch.setattr(runner, "_wait_reconnect", wait)
    runner._run_live()
    attempts = [a for a, _ in waits]
    assert attempts == [0, 1, 2, 0, 0, 1, 2], "a connection that delivered frames resets the backoff"
    assert all(delay <= 1.0 for a, delay in waits if a == 0)
