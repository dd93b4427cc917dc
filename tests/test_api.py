"""The HTTP API against the real broker, Redis and NanoDet model (uvicorn in a thread)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import simplejpeg

from inference.registry import ModelRegistry
from schemas.alert import AlertRecord, TimeWindow, alert_id
from schemas.camera_event import CameraEvent
from schemas.frame import FrameMeta
from sightline.api import create_app
from sightline.api.server import ServerThread
from sightline.config import SightlineConfig
from streams.kafka import make_producer
from tests.conftest import Stack

TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def api(stack: Stack, model_registry: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    registry_dir = tmp_path_factory.mktemp("api-registry") / "models"
    shutil.copytree(model_registry, registry_dir)  # promotions here must not affect other tests
    config = stack.fresh_config("api")
    config.inference.registry_dir = registry_dir
    config.inference.group_id = f"{config.topics.frames.name}-workers"
    config.inference.max_batch, config.inference.max_wait_ms = 4, 50
    config.inference.model_poll_s = 0.2
    config.api.admin_token = TOKEN
    config.api.max_upload_bytes = 2_000_000
    config.api.max_pixels = 4_000_000
    with ServerThread(create_app(config)) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        yield config, client, server


def _png_header(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk


def test_health_ready_metrics_and_docs(api: tuple) -> None:
    _config, client, _server = api
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert all(check["ok"] for check in ready.json()["checks"].values())
    assert "nanodet-m" in ready.json()["checks"]["model"]["detail"]
    assert client.get("/docs").status_code == 200
    assert "/v1/detect" in client.get("/openapi.json").json()["paths"]
    client.post("/v1/detect", content=b"x")
    assert "sightline_api_detect_requests_total" in client.get("/metrics").text


def test_detect_raw_and_multipart_and_micro_batching(api: tuple, bus_jpg: Path) -> None:
    _config, client, server = api
    jpeg = bus_jpg.read_bytes()
    raw = client.post("/v1/detect", content=jpeg, headers={"Content-Type": "image/jpeg"})
    assert raw.status_code == 200, raw.text
    body = raw.json()
    names = body["detections"]["class_name"]
    assert "bus" in names and names.count("person") >= 4, names
    assert set(body["detections"]) == {"xyxy", "confidence", "class_id", "class_name", "tracker_id"}
    assert (body["width"], body["height"]) == (810, 1080) and body["model"]["name"] == "nanodet-m"
    multi = client.post("/v1/detect", files={"file": ("bus.jpg", jpeg, "image/jpeg")})
    assert multi.status_code == 200 and multi.json()["detections"] == body["detections"]

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as aclient:
            return await asyncio.gather(*(aclient.post("/v1/detect", content=jpeg) for _ in range(8)))

    responses = asyncio.run(burst())
    assert all(r.status_code == 200 for r in responses)
    sizes = [r.json()["timing"]["batch_size"] for r in responses]
    assert max(sizes) > 1 and max(sizes) <= 4, sizes
    assert all(r.json()["detections"] == body["detections"] for r in responses)


def test_bad_uploads_get_clear_4xx_errors(api: tuple, bus_jpg: Path) -> None:
    config, client, _server = api
    jpeg = bus_jpg.read_bytes()
    cases = {
        "not an image": (b"hello world", 415, "unsupported_media_type"),
        "empty": (b"", 400, "empty_body"),
        "truncated jpeg": (jpeg[: len(jpeg) // 2], 400, "truncated_image"),
        "too large": (jpeg + b"\0" * config.api.max_upload_bytes, 413, "upload_too_large"),
        "png bomb": (_png_header(50_000, 50_000), 413, "too_many_pixels"),
    }
    big = simplejpeg.encode_jpeg(np.zeros((2100, 2100, 3), np.uint8), 50)
    cases["jpeg bomb"] = (big, 413, "too_many_pixels")
    for name, (data, status, code) in cases.items():
        response = client.post("/v1/detect", content=data)
        assert response.status_code == status, (name, response.text)
        assert response.json()["error"] == code, name


def test_models_list_promote_rollback_need_the_token(api: tuple, bus_jpg: Path) -> None:
    config, client, _server = api
    registry = ModelRegistry(config.inference.registry_dir)
    _manifest, path = registry.promoted("nanodet-m")
    registry.add(path, "nanodet-m", version="2", score_threshold=0.6)
    listed = client.get("/v1/models").json()["models"]
    [model] = [m for m in listed if m["name"] == "nanodet-m"]
    assert model["promoted"] == "1" and {v["version"] for v in model["versions"]} >= {"1", "2"}

    url = "/v1/models/nanodet-m/promote"
    assert client.post(url, json={"version": "2"}).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert client.post(url, json={"version": "2"}, headers=wrong).status_code == 403
    assert client.post(url, json={"version": "9"}, headers=AUTH).status_code == 404
    assert client.post("/v1/models/nope/promote", json={"version": "1"}, headers=AUTH).status_code == 404
    promoted = client.post(url, json={"version": "2"}, headers=AUTH)
    assert promoted.status_code == 200 and promoted.json()["promoted"] == "2"
    deadline = time.monotonic() + 20
    while client.post("/v1/detect", content=bus_jpg.read_bytes()).json()["model"]["version"] != "2":
        assert time.monotonic() < deadline, "the API did not hot-swap to the promoted version"
        time.sleep(0.3)
    rolled = client.post("/v1/models/nanodet-m/rollback", headers=AUTH)
    assert rolled.status_code == 200 and rolled.json()["promoted"] == "1"
    assert client.post("/v1/models/nanodet-m/rollback", headers=AUTH).status_code == 409


def test_cameras_alerts_and_annotated_frame_from_the_topics(api: tuple, bus_jpg: Path) -> None:
    config, client, _server = api
    producer = make_producer(config.kafka)
    now = time.time_ns()
    event = CameraEvent(camera_id="cam-a", event="online", at_ns=now, source="rtsp://x/a")
    producer.produce(config.topics.camera_events.name, key=b"cam-a", value=event.encode())
    jpeg = bus_jpg.read_bytes()
    frame_offset: list[int] = []
    producer.produce(
        config.topics.frames.name,
        key=b"cam-a",
        value=jpeg,
        headers=FrameMeta("cam-a", 0, now, 810, 1080).headers(),
        on_delivery=lambda err, msg: frame_offset.append((msg.partition(), msg.offset())),
    )
    producer.flush(10)
    partition, offset = frame_offset[0]
    detections = client.post("/v1/detect", content=jpeg).json()
    record = {
        "schema_version": 1, "camera_id": "cam-a", "seq": 0, "capture_ns": now, "stream_ts": None,
        "width": 810, "height": 1080,
        "frame": {"topic": config.topics.frames.name, "partition": partition, "offset": offset,
                  "claim_check": None},
        "model": detections["model"],
        "timing": {"queue_ms": 0, "preprocess_ms": 1, "inference_ms": 1, "batch_size": 1},
        "produced_ns": now, "detections": {**detections["detections"], "tracker_id": [7] * len(
            detections["detections"]["xyxy"])},
    }  # fmt: skip
    producer.produce(config.topics.detections.name, key=b"cam-a", value=json.dumps(record).encode())
    for i, kind in enumerate(["tally", "drift"]):
        alert = AlertRecord(
            alert_id=alert_id("api-test", i), type=kind, severity="warning",
            camera_id="cam-a" if i else "cam-b",
            rule=f"r{i}", window=TimeWindow(start_ns=now, end_ns=now), capture_ns=now, created_ns=now,
            summary=f"alert {i}",
        )  # fmt: skip
        producer.produce(config.topics.alerts.name, key=alert.camera_id.encode(), value=alert.encode())
    producer.flush(10)

    deadline = time.monotonic() + 20
    while True:
        cams = {c["camera_id"]: c for c in client.get("/v1/cameras").json()["cameras"]}
        cam = cams.get("cam-a")
        # Nobody consumes frames in the inference group here, so the frame counts as lag.
        if cam and cam["online"] and cam["last_seq"] == 0 and (cam["inference_lag"] or 0) >= 1:
            break
        assert time.monotonic() < deadline, cams
        time.sleep(0.3)
    assert cam["fps_in"] > 0 and cam["fps_out"] > 0 and cam["last_frame_age_s"] >= 0

    alerts = client.get("/v1/alerts").json()["alerts"]
    assert [a["summary"] for a in alerts][:2] == ["alert 1", "alert 0"], "newest first"
    assert [a["type"] for a in client.get("/v1/alerts", params={"camera": "cam-b"}).json()["alerts"]] == [
        "tally"
    ]
    assert len(client.get("/v1/alerts", params={"type": "drift", "limit": 1}).json()["alerts"]) == 1

    frame = client.get("/v1/cameras/cam-a/frame.jpg")
    assert frame.status_code == 200 and frame.headers["content-type"] == "image/jpeg"
    assert int(frame.headers["x-detections"]) == len(record["detections"]["xyxy"])
    drawn = simplejpeg.decode_jpeg(frame.content)
    assert drawn.shape == (1080, 810, 3)
    assert client.get("/v1/cameras/nope/frame.jpg").status_code == 404


@contextlib.contextmanager
def _plain(config: SightlineConfig) -> Iterator[httpx.Client]:
    """An API without model or Kafka tail: enough for the auth rules."""
    app = create_app(config, tail=False, load_model=False)
    with ServerThread(app) as server, httpx.Client(base_url=server.url) as client:
        yield client


def test_private_reads_need_a_token_header_never_a_query() -> None:
    config = SightlineConfig(api={"token": TOKEN, "public_reads": False})  # `token`: admin's old name
    with _plain(config) as client:
        assert client.get("/v1/cameras").status_code == 401
        assert client.get("/v1/cameras", headers=AUTH).status_code == 200
        assert client.get("/v1/cameras", params={"access_token": TOKEN}).status_code == 401
        assert client.get("/healthz").status_code == 200
    no_token = SightlineConfig()
    with _plain(no_token) as client:
        assert client.post("/v1/models/nanodet-m/rollback").status_code == 503
        assert client.get("/v1/cameras").status_code == 200
