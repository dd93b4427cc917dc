"""Inference workers against the real broker, Redis and NanoDet model."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import Producer

from decoders.runner import run_cameras
from inference.registry import ModelRegistry
from inference.worker import InferenceWorker
from schemas.dead_letter import parse_dead_letter
from schemas.detections import DetectionsRecord
from schemas.frame import FrameMeta
from sightline.config import CameraSettings, SightlineConfig
from streams.claimcheck import ClaimCheckStore
from streams.kafka import make_producer
from tests.conftest import Stack, write_config
from tests.helpers import read_topic

VTEST_FRAMES = 795


def _worker_config(
    stack: Stack, registry: Path, prefix: str, partitions: int | None = None
) -> SightlineConfig:
    config = stack.fresh_config(prefix, partitions)
    config.inference.registry_dir = registry
    config.inference.group_id = f"{config.topics.frames.name}-workers"
    config.inference.max_batch = 4
    config.inference.max_wait_ms = 20
    return config


def _publish_jpeg(
    producer: Producer,
    config: SightlineConfig,
    camera: str,
    seq: int,
    jpeg: bytes,
    w: int,
    h: int,
    headers: list | None = None,
) -> None:
    meta = FrameMeta(camera, seq, time.time_ns(), w, h)
    producer.produce(
        config.topics.frames.name, key=camera.encode(), value=jpeg, headers=headers or meta.headers()
    )


def _detections(config: SightlineConfig, expected: int | None = None, **kw: object) -> list[DetectionsRecord]:
    messages = read_topic(config, config.topics.detections.name, expected=expected, **kw)  # type: ignore[arg-type]
    return [DetectionsRecord.decode(m.value()) for m in messages]


def test_bus_photo_yields_a_bus_and_people(stack: Stack, model_registry: Path, bus_jpg: Path) -> None:
    config = _worker_config(stack, model_registry, "bus")
    producer = make_producer(config.kafka)
    _publish_jpeg(producer, config, "cam-bus", 0, bus_jpg.read_bytes(), 810, 1080)
    producer.flush(10)
    InferenceWorker(config, worker_id="bus").run(max_idle_s=3)
    [record] = _detections(config, expected=1)
    names = Counter(record.detections.class_name)
    assert names["bus"] >= 1 and names["person"] >= 4, names
    bus = record.detections.xyxy[record.detections.class_name.tolist().index("bus")]
    assert bus[2] - bus[0] > 500, "boxes are in the original frame's pixels (810 wide)"
    assert record.model.name == "nanodet-m"
    assert record.timing.inference_ms > 0 and record.timing.batch_size >= 1


def test_vtest_yields_one_record_per_frame_in_order(
    stack: Stack, model_registry: Path, vtest_path: Path
) -> None:
    config = _worker_config(stack, model_registry, "vtestinf")
    run_cameras(config, [CameraSettings(id="cam1", url=str(vtest_path), fps=10)], metrics_port=0)
    stats = InferenceWorker(config, worker_id="vtest").run(max_idle_s=3)
    assert stats.frames == VTEST_FRAMES and stats.dead_letters == 0
    records = _detections(config, expected=VTEST_FRAMES)
    assert [r.seq for r in records] == list(range(VTEST_FRAMES)), "exactly one record per frame, in order"
    stages = list(stats.frame_stages_ms)  # where each frame's age went, for the benchmark
    assert len(stages) == VTEST_FRAMES
    assert all(batching >= 0 and inside > 0 and after >= 0 for _, batching, inside, after in stages)
    full = sum(r.timing.batch_size == config.inference.max_batch for r in records)
    assert full > 0.9 * VTEST_FRAMES, f"a backlog keeps the model busy, so batches fill up ({full} full)"
    with_people = sum("person" in r.detections.class_name for r in records)
    assert with_people > 0.8 * VTEST_FRAMES, with_people
    frame400 = Counter(records[400].detections.class_name)
    assert frame400["person"] >= 2 and (frame400["car"] + frame400["truck"]) >= 1, frame400
    tracked = [t for r in records[390:410] for t in r.detections.tracker_id if t is not None and t >= 0]
    assert tracked and Counter(tracked).most_common(1)[0][1] >= 10, "people keep their track id across frames"


def test_an_idle_model_gets_a_lone_frame_at_once_not_after_max_wait(
    stack: Stack, model_registry: Path, bus_jpg: Path
) -> None:
    config = _worker_config(stack, model_registry, "idleclose")
    config.inference.max_wait_ms = 120_000  # a batch that waited for company would outlive the test
    stop = threading.Event()
    worker = InferenceWorker(config, worker_id="idle-close", stop=stop)
    thread = threading.Thread(target=worker.run, name="idle-close-worker")
    thread.start()
    try:
        producer = make_producer(config.kafka)
        for seq in range(2):  # one at a time: each finds the model idle and runs alone
            _publish_jpeg(producer, config, "cam-idle", seq, bus_jpg.read_bytes(), 810, 1080)
            producer.flush(10)
            records = _detections(config, expected=seq + 1, max_wait=60)
            assert [r.seq for r in records] == list(range(seq + 1))
        assert [r.timing.batch_size for r in records] == [1, 1]
        # Frames that arrive together (one fetch) run together, even though the idle model would
        # take a batch at once: the lone first one does not go ahead of the others.
        for seq in range(2, 6):
            _publish_jpeg(producer, config, "cam-idle", seq, bus_jpg.read_bytes(), 810, 1080)
        producer.flush(10)
        records = _detections(config, expected=6, max_wait=60)
        assert [r.timing.batch_size for r in records[2:]] == [4, 4, 4, 4]
    finally:
        stop.set()
        thread.join(60)


def test_bad_records_go_to_the_dead_letter_topic_and_the_worker_carries_on(
    stack: Stack, model_registry: Path, bus_jpg: Path
) -> None:
    config = _worker_config(stack, model_registry, "dlq")
    # complete: its frames are published before the worker starts, and each must be decoded (a
    # realtime camera's stale frame is skipped undecoded: test_a_realtime_camera_skips_...).
    config.cameras = [CameraSettings(id="cam1", url="rtsp://10.0.0.1/x", freshness="complete")]
    config.inference.reject_unknown_cameras = True
    config.frames.max_frame_bytes = 500_000
    jpeg = bus_jpg.read_bytes()
    good = FrameMeta("cam1", 0, time.time_ns(), 810, 1080).headers()
    claims = ClaimCheckStore(config.redis.url, ttl_s=1)
    expired_key = claims.put("sightline:frame:cam1:gone", jpeg)
    time.sleep(1.5)
    bad = {
        "undecodable": (b"cam1", b"\xff\xd8\xff" + b"\x00" * 500, good),
        "expired": (b"cam1", b"", [*good, ("claim-check", expired_key.encode())]),
        "version": (b"cam1", jpeg, [(k, b"9" if k == "schema-version" else v) for k, v in good]),
        "missing": (b"cam1", jpeg, [("camera-id", b"cam1")]),
        "unknown camera": (b"cam9", jpeg, FrameMeta("cam9", 0, 1, 810, 1080).headers()),
        "oversized": (b"cam1", jpeg + b"\0" * 500_000, good),
    }
    producer = make_producer(config.kafka)
    for key, value, headers in bad.values():
        producer.produce(config.topics.frames.name, key=key, value=value, headers=headers)
    _publish_jpeg(producer, config, "cam1", 1, jpeg, 810, 1080)
    producer.flush(10)
    stats = InferenceWorker(config, worker_id="dlq").run(max_idle_s=3)
    assert stats.dead_letters == len(bad)
    assert len(_detections(config, expected=1)) == 1, "the good frame after the bad ones is processed"
    letters = read_topic(config, config.topics.dead_letter.name, expected=len(bad))
    reasons = [parse_dead_letter(m.headers()).reason for m in letters]
    for expected_reason in (
        "undecodable jpeg",
        "expired",
        "unsupported frame schema-version '9'",
        "missing header 'schema-version'",
        "unknown camera 'cam9'",
        "oversized frame",
    ):
        assert any(expected_reason in r for r in reasons), (expected_reason, reasons)
    original = next(m for m in letters if "unknown camera" in parse_dead_letter(m.headers()).reason)
    assert original.key() == b"cam9" and original.value() == jpeg, "the original record is kept intact"


def _spawn_worker(config_file: Path, worker_id: str, delivery: str, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sightline.cli",
            "-c",
            str(config_file),
            "infer",
            "--worker-id",
            worker_id,
            "--delivery",
            delivery,
            "--max-idle",
            "8",
        ],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "SIGHTLINE_METRICS__INFERENCE_PORT": "0"},
    )


@pytest.mark.parametrize("delivery", ["exactly-once", "at-least-once"])
def test_kill_9_mid_stream_and_restart(
    stack: Stack, model_registry: Path, vtest_path: Path, tmp_path: Path, delivery: str
) -> None:
    config = _worker_config(stack, model_registry, "kill")
    config.inference.max_batch = 8
    frames = 300
    run_cameras(
        config, [CameraSettings(id="cam1", url=str(vtest_path), fps=10)], metrics_port=0, max_frames=frames
    )
    config_file = write_config(config, tmp_path / "config.yaml")
    log = tmp_path / "worker.log"
    worker = _spawn_worker(config_file, "w1", delivery, log)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        done = read_topic(config, config.topics.detections.name, read_committed=False)
        if len(done) >= 60:
            break
        time.sleep(0.5)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    partial = len(read_topic(config, config.topics.detections.name, read_committed=False))
    assert 0 < partial < frames, "killed mid-stream"
    restarted = _spawn_worker(config_file, "w1", delivery, log)
    assert restarted.wait(timeout=300) == 0, log.read_text()[-3000:]
    seqs = Counter(r.seq for r in _detections(config, expected=frames))
    assert set(seqs) == set(range(frames)), "no frame lost"
    if delivery == "exactly-once":
        assert max(seqs.values()) == 1, "exactly one committed record per frame"


def test_two_workers_share_partitions_and_one_takes_over(
    stack: Stack, model_registry: Path, vtest_path: Path
) -> None:
    config = _worker_config(stack, model_registry, "pair", partitions=4)
    cameras = [CameraSettings(id=f"cam{i}", url=str(vtest_path), fps=2) for i in range(4)]
    run_cameras(config, cameras, metrics_port=0, max_frames=40)
    stop_a = threading.Event()
    worker_a = InferenceWorker(config, worker_id="a", stop=stop_a)
    worker_b = InferenceWorker(config, worker_id="b")
    thread_a = threading.Thread(target=worker_a.run)
    thread_b = threading.Thread(target=worker_b.run, kwargs={"max_idle_s": 10})
    thread_a.start()
    thread_b.start()
    time.sleep(6)
    stop_a.set()  # worker a leaves; its partitions move to b
    thread_a.join(60)
    thread_b.join(240)
    assert worker_a.stats.frames > 0 and worker_b.stats.frames > 0, "both workers got partitions"
    records = _detections(config, expected=160)
    got = Counter((r.camera_id, r.seq) for r in records)
    assert set(got) == {(f"cam{i}", s) for i in range(4) for s in range(40)}, "no frame lost"


def test_promote_and_rollback_while_frames_flow(stack: Stack, own_registry: Path, vtest_path: Path) -> None:
    config = _worker_config(stack, own_registry, "swap")
    config.inference.model_poll_s = 0.2
    registry = ModelRegistry(own_registry)
    name = config.inference.model = "nanodet-m"
    first = registry.promoted(name)[0].version
    _, path = registry.promoted(name)
    second = registry.add(path, name, version="swap-test").version
    registry.promote(name, first)
    stop = threading.Event()
    worker = InferenceWorker(config, worker_id="swap", stop=stop)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        producer = threading.Thread(
            target=run_cameras,
            args=(config, [CameraSettings(id="cam1", url=str(vtest_path), fps=10)]),
            kwargs={"metrics_port": 0, "max_frames": 150, "realtime": True},
        )
        producer.start()
        time.sleep(5)
        registry.promote(name, second)
        time.sleep(5)
        assert registry.rollback(name) == first
        producer.join(60)
        records = _detections(config, expected=150)
    finally:
        stop.set()
        thread.join(60)
    assert [r.seq for r in records] == list(range(150)), "nothing dropped or doubled across swaps"
    versions = [r.model.version for r in records]
    assert versions[0] == first and second in versions and versions[-1] == first
    changes = sum(1 for a, b in zip(versions, versions[1:], strict=False) if a != b)
    assert changes == 2, "one swap to the new version, one rollback"


def test_exactly_once_groups_finished_batches_into_one_transaction_per_interval(
    stack: Stack, model_registry: Path, vtest_path: Path
) -> None:
    config = _worker_config(stack, model_registry, "eos-interval")
    config.inference.delivery = "exactly-once"
    config.inference.max_batch = 2
    config.inference.transaction_interval_ms = 1000
    config.inference.max_in_flight_batches = 64
    frames = 40
    run_cameras(
        config, [CameraSettings(id="cam1", url=str(vtest_path), fps=10)], metrics_port=0, max_frames=frames
    )
    worker = InferenceWorker(config, worker_id="eos-interval")
    stats = worker.run(max_idle_s=3)
    transactions = worker.delivery.committed  # type: ignore[union-attr]
    assert stats.batches >= frames // 2
    assert 0 < transactions <= stats.batches / 3, f"{transactions} transactions for {stats.batches} batches"
    seqs = Counter(r.seq for r in _detections(config, expected=frames))
    assert seqs == Counter(range(frames)), "every frame exactly once"


@pytest.mark.parametrize("delivery", ["at-least-once", "exactly-once"])
def test_a_realtime_camera_skips_stale_frames_and_says_so_a_complete_camera_runs_them_all(
    stack: Stack, model_registry: Path, bus_jpg: Path, delivery: str
) -> None:
    config = _worker_config(stack, model_registry, f"fresh-{delivery[:5]}")
    config.inference.delivery = delivery  # type: ignore[assignment]
    config.cameras = [
        CameraSettings(id="cam-live", url="rtsp://10.0.0.1/x", max_age_ms=30_000),  # live: realtime
        CameraSettings(id="cam-file", url=str(bus_jpg)),  # a file: complete
    ]
    jpeg = bus_jpg.read_bytes()
    producer = make_producer(config.kafka)
    now = time.time_ns()
    for seq in range(8):  # a backlog: seq 0-4 two minutes old, 5-7 fresh
        capture_ns = now - 120 * 10**9 if seq < 5 else now
        for camera in ("cam-live", "cam-file"):
            meta = FrameMeta(camera, seq, capture_ns, 810, 1080)
            topic = config.topics.frames.name
            producer.produce(topic, key=camera.encode(), value=jpeg, headers=meta.headers())
    producer.flush(10)
    stats = InferenceWorker(config, worker_id=f"fresh-{delivery[:5]}").run(max_idle_s=3)
    assert stats.skipped == 5 and stats.dead_letters == 0
    records = _detections(config, expected=16)
    by_camera = {cam: [r for r in records if r.camera_id == cam] for cam in ("cam-live", "cam-file")}
    for camera, own in by_camera.items():
        assert [r.seq for r in own] == list(range(8)), f"{camera}: one record per frame, in seq order"
    live = by_camera["cam-live"]
    for r in live[:5]:
        assert r.skipped is not None and r.skipped.reason == "stale" and r.timing is None
        assert r.skipped.max_age_ms == 30_000 and r.skipped.age_ms >= 120_000
        assert len(r.detections) == 0
    for r in live[5:] + by_camera["cam-file"]:
        assert r.skipped is None and r.timing is not None
        assert "bus" in r.detections.class_name.tolist(), "a frame that was run has its boxes"


def test_a_silent_cameras_tracker_is_dropped_after_its_idle_ttl(
    stack: Stack, model_registry: Path, bus_jpg: Path
) -> None:
    config = _worker_config(stack, model_registry, "evict")
    config.inference.tracker_idle_ttl_s = 1.0
    producer = make_producer(config.kafka)
    _publish_jpeg(producer, config, "cam-quiet", 0, bus_jpg.read_bytes(), 810, 1080)
    producer.flush(10)
    worker = InferenceWorker(config, worker_id="evict")
    worker.run(max_idle_s=4)  # the frame, then 4 s of silence
    assert len(_detections(config, expected=1)) == 1
    assert worker.trackers.cameras == [], "the tracker of a camera silent past its TTL is gone"
