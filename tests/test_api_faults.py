"""The API and the drift monitor ride out Kafka and Redis outages (real broker and Redis, killed)."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import httpx
import numpy as np
import orjson
import pytest
import simplejpeg
from confluent_kafka import KafkaException
from prometheus_client import REGISTRY

from schemas.alert import AlertRecord, TimeWindow, alert_id
from schemas.detections import DetectionsRecord
from schemas.frame import FrameMeta
from sightline.api import create_app
from sightline.api.server import ServerThread
from sightline.config import SightlineConfig
from sightline.drift.service import DriftService, run_drift
from streams.claimcheck import ClaimCheckStore
from streams.devinfra import free_port
from streams.kafka import make_producer
from tests.conftest import Stack

T = TypeVar("T")


def _until(check: Callable[[], T], timeout: float = 30.0, what: str = "") -> T:
    """The first truthy result of `check()`, polled; fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what or check}"
        time.sleep(0.2)


def _gauge(component: str, dependency: str) -> float | None:
    labels = {"component": component, "dependency": dependency}
    return REGISTRY.get_sample_value("sightline_dependency_up", labels)


def _detections(config: SightlineConfig, camera: str, ref: dict) -> bytes:
    now = time.time_ns()
    return DetectionsRecord.decode(orjson.dumps(
        {
            "camera_id": camera, "seq": 0, "capture_ns": now, "width": 64, "height": 48,
            "frame": {"topic": config.topics.frames.name, "partition": 0, "offset": 0, **ref},
            "model": {"name": "nanodet-m", "version": "test"},
            "timing": {"queue_ms": 0, "preprocess_ms": 0, "inference_ms": 0, "batch_size": 1},
            "produced_ns": now, "detections": {},
        }
    )).encode()  # fmt: skip


def _alert(summary: str) -> bytes:
    now = time.time_ns()
    alert = AlertRecord(
        alert_id=alert_id("api-faults", summary), type="tally", severity="info", camera_id="cam-k",
        rule="r", window=TimeWindow(start_ns=now, end_ns=now), capture_ns=now, created_ns=now,
        summary=summary,
    )  # fmt: skip
    return alert.encode()


def _jpeg(value: int) -> bytes:
    return simplejpeg.encode_jpeg(np.full((48, 64, 3), value, np.uint8), 90, colorspace="BGR")


def _produce_frames(
    config: SightlineConfig, camera: str, seqs: range, claims: ClaimCheckStore | None
) -> None:
    producer = make_producer(config.kafka)
    for seq in seqs:
        meta = FrameMeta(camera, seq, time.time_ns(), 64, 48)
        value: bytes | None = _jpeg(seq % 200)
        if claims is not None:
            key = claims.put(ClaimCheckStore.key_for(camera, seq, meta.capture_ns), value)
            meta = dataclasses.replace(meta, claim_check=key)
            value = None
        producer.produce(config.topics.frames.name, key=camera.encode(), value=value, headers=meta.headers())
    assert producer.flush(60) == 0


def _samples(service: DriftService, camera: str) -> int:
    feature = service.monitor.features.get((camera, "brightness"))
    return 0 if feature is None else len(feature.baseline) + len(feature.recent)


def _alert_summaries(client: httpx.Client) -> list[str]:
    return [a["summary"] for a in client.get("/v1/alerts", params={"limit": 1000}).json()["alerts"]]


@pytest.fixture(scope="module")
def api(own_stack: Stack, model_registry: Path) -> Iterator[tuple[SightlineConfig, httpx.Client]]:
    config = own_stack.fresh_config("apif", partitions=1)
    config.inference.registry_dir = model_registry
    config.inference.group_id = f"{config.topics.frames.name}-workers"
    config.api.tail_frames = False  # frame.jpg then reads the frame back from Kafka or Redis
    with ServerThread(create_app(config)) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        yield config, client


def test_api_reports_a_redis_outage_and_answers_503_until_it_is_back(
    api: tuple[SightlineConfig, httpx.Client], own_stack: Stack
) -> None:
    config, client = api
    claims = ClaimCheckStore(config.redis.url, 600)
    key = claims.put(ClaimCheckStore.key_for("cam-r", 0, 1), _jpeg(90))
    claims.close()
    producer = make_producer(config.kafka)
    record = _detections(config, "cam-r", {"claim_check": key})
    producer.produce(config.topics.detections.name, key=b"cam-r", value=record)
    assert producer.flush(10) == 0
    _until(lambda: client.get("/v1/cameras/cam-r/frame.jpg").status_code == 200, what="frame.jpg")
    assert client.get("/readyz").status_code == 200
    time.sleep(1.2)  # Redis fsyncs its append-only file every second: let the claim check survive
    own_stack.dev.kill("redis")
    try:
        ready = _until(lambda: (r := client.get("/readyz")).status_code == 503 and r, 10, "readyz 503")
        checks = ready.json()["checks"]
        assert checks["kafka"]["ok"] and not checks["redis"]["ok"], checks
        assert checks["redis"]["since"] and checks["redis"]["for_s"] >= 0, checks
        assert _gauge("api", "redis") == 0
        frame = client.get("/v1/cameras/cam-r/frame.jpg")
        assert frame.status_code == 503 and frame.json()["error"] == "redis_unavailable", frame.text
        assert int(frame.headers["Retry-After"]) >= 1
    finally:
        own_stack.dev.start("redis")
    _until(lambda: client.get("/readyz").status_code == 200, 15, "readyz 200 again")
    assert _gauge("api", "redis") == 1
    assert client.get("/v1/cameras/cam-r/frame.jpg").status_code == 200


def test_api_tail_on_a_missing_topic_is_not_ready_and_says_why(own_stack: Stack) -> None:
    config = own_stack.fresh_config("apim", partitions=1)
    config.topics.alerts.name += "-missing"
    app = create_app(config, load_model=False)
    with ServerThread(app) as server, httpx.Client(base_url=server.url, timeout=10) as client:
        tail = _until(lambda: client.get("/readyz").json()["checks"].get("tail"), 10, "a tail check")
        assert not tail["ok"] and config.topics.alerts.name in tail["detail"], tail


def test_drift_waits_for_redis_and_serves_its_readiness(own_stack: Stack) -> None:
    config = own_stack.fresh_config("driftr", partitions=1)
    config.drift.group_id = f"{config.topics.frames.name}-drift"
    claims = ClaimCheckStore(config.redis.url, 600)
    _produce_frames(config, "cam-c", range(20), claims)
    claims.close()
    time.sleep(1.2)  # AOF fsync, as above
    own_stack.dev.kill("redis")
    service = DriftService(config)
    failure: list[BaseException] = []
    thread = threading.Thread(target=lambda: _record_failure(service.run, failure), daemon=True)
    port, server = free_port(), None
    try:
        thread.start()
        _until(lambda: _gauge("drift", "redis") == 0 or failure, 20, "drift degraded on redis")
        assert thread.is_alive(), failure
        from streams.http_health import serve_health

        server = serve_health(service.health, "127.0.0.1", port, "drift.metrics_port")
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz")
        assert ready.status_code == 503 and not ready.json()["dependencies"]["redis"]["up"], ready.text
        assert "sightline_dependency_up" in httpx.get(f"http://127.0.0.1:{port}/metrics").text
        own_stack.dev.start("redis")
        _until(lambda: service.stats.frames == 20 or failure, 30, "all frames after Redis is back")
        assert not failure and _gauge("drift", "redis") == 1
        assert httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200
    finally:
        own_stack.dev.start("redis")
        service.stop.set()
        thread.join(15)
        if server is not None:
            server.shutdown()


def _record_failure(fn: Callable[[], object], failures: list[BaseException]) -> None:
    try:
        fn()
    except BaseException as exc:  # noqa: BLE001 - the test reports it
        failures.append(exc)


def test_drift_fails_clearly_on_a_missing_topic(own_stack: Stack) -> None:
    config = own_stack.fresh_config("driftm", partitions=1)
    config.drift.group_id = f"{config.topics.frames.name}-drift"
    config.topics.detections.name += "-missing"
    stop = threading.Event()
    timer = threading.Timer(15, stop.set)
    timer.start()
    try:
        with pytest.raises(KafkaException, match="-missing"):
            run_drift(config, stop)
    finally:
        timer.cancel()


@pytest.mark.chaos
def test_api_tail_and_drift_ride_out_a_broker_restart(
    api: tuple[SightlineConfig, httpx.Client], own_stack: Stack
) -> None:
    config, client = api
    config = config.model_copy(deep=True)
    config.drift.group_id = f"{config.topics.frames.name}-drift"
    producer = make_producer(config.kafka)
    producer.produce(config.topics.alerts.name, key=b"cam-k", value=_alert("before"))
    # A frame that is not in the tail's memory: frame.jpg has to read it back from Kafka.
    record = _detections(config, "cam-f", {"offset": 0})
    producer.produce(config.topics.detections.name, key=b"cam-f", value=record)
    assert producer.flush(10) == 0
    _produce_frames(config, "cam-k", range(10), None)
    service = DriftService(config)
    failure: list[BaseException] = []
    thread = threading.Thread(target=lambda: _record_failure(service.run, failure), daemon=True)
    thread.start()
    try:
        _until(lambda: "before" in _alert_summaries(client), 20, "the first alert")
        _until(lambda: service.stats.frames == 10 or failure, 30, "drift read the first frames")
        own_stack.dev.kill("kafka")
        try:
            ready = _until(lambda: (r := client.get("/readyz")).status_code == 503 and r, 15, "readyz 503")
            assert not ready.json()["checks"]["kafka"]["ok"] and ready.json()["checks"]["kafka"]["since"]
            frame = client.get("/v1/cameras/cam-f/frame.jpg")
            assert frame.status_code == 503 and frame.json()["error"] == "kafka_unavailable", frame.text
            assert "Retry-After" in frame.headers
            _until(lambda: _gauge("drift", "kafka") == 0 or failure, 15, "drift degraded on kafka")
            time.sleep(11)  # past the drift group's session timeout: it has to rejoin
        finally:
            own_stack.dev.start("kafka")
        producer.produce(config.topics.alerts.name, key=b"cam-k", value=_alert("after"))
        assert producer.flush(30) == 0
        _produce_frames(config, "cam-k2", range(10), None)
        _until(lambda: "after" in _alert_summaries(client), 30, "the tail after the restart")
        # Frames read before the kill may be read again (at least once); the new camera's all arrive.
        _until(lambda: _samples(service, "cam-k2") == 10 or failure, 60, "drift after the restart")
        assert not failure and thread.is_alive(), failure
        assert _alert_summaries(client).count("before") == 1, "the tail re-read what it had"
        _until(lambda: client.get("/readyz").status_code == 200, 15, "readyz 200 again")
        assert _gauge("drift", "kafka") == 1
    finally:
        service.stop.set()
        thread.join(15)
