"""The live view against a running pipeline: SSE resume over HTTP, and the page in headless Chromium."""

from __future__ import annotations

import base64
import re
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest

from alerts.settings import RulesSettings
from inference.worker import InferenceWorker
from schemas.alert import AlertRecord, TimeWindow, alert_id
from schemas.camera_event import CameraEvent
from schemas.frame import FrameMeta
from sightline.api import create_app
from sightline.api.server import ServerThread
from sightline.api.tail import RATE_WINDOW_S, Rate, TailState
from sightline.config import CameraSettings, SightlineConfig
from sightline.drawing import box_color
from streams.kafka import make_producer
from tests.conftest import Stack

pytestmark = pytest.mark.infra  # a real browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Debian chromium is not installed (scripts/setup.sh)"
)
FPS = 5.0


def _alert(config: SightlineConfig, tag: str, i: int, severity: str = "warning") -> AlertRecord:
    now = time.time_ns()
    return AlertRecord(
        alert_id=alert_id(tag, i),
        type="threshold",
        severity=severity,
        camera_id="lobby",
        rule=f"rule-{i}",
        window=TimeWindow(start_ns=now, end_ns=now),
        capture_ns=now,
        created_ns=now,
        summary=f"{tag} alert {i}",
    )


def _publish(config: SightlineConfig, alerts: list[AlertRecord]) -> None:
    producer = make_producer(config.kafka)
    for alert in alerts:
        producer.produce(config.topics.alerts.name, key=b"lobby", value=alert.encode())
    producer.flush(10)


def _until(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
    return value


def _read_sse(
    client: httpx.Client, headers: dict[str, str], until: Callable[[list[dict]], bool]
) -> list[dict]:
    """Events of one /v1/stream response (id, event, alert id) until `until` holds."""
    events: list[dict] = []
    current: dict[str, str] = {}
    with client.stream("GET", "/v1/stream", headers=headers, timeout=20) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line:
                key, _, value = line.partition(": ")
                current[key] = value
                continue
            if "event" in current:
                data = current["data"]
                alert = re.search(r'"alert_id":"([^"]+)"', data) if current["event"] == "alert" else None
                events.append({"id": current["id"], "event": current["event"], "alert": alert and alert[1]})
                if until(events):
                    break
            current = {}
    return events


def _alerts_of(events: list[dict]) -> list[str]:
    return [e["alert"] for e in events if e["event"] == "alert"]


def test_fps_from_capture_times_and_live_list_hides_stale_cameras() -> None:
    rate, now = Rate(), time.time()
    for i in range(16):  # a rewound backlog of a 10 fps camera, read in one go at start-up
        rate.add(1_000 + i / 10, now)
    assert rate.per_second(now) == pytest.approx(10.0)
    assert rate.per_second(now + RATE_WINDOW_S + 1) == 0.0, "nothing arrived lately"

    config = SightlineConfig(
        cameras=[
            CameraSettings(id="yard", url="rtsp://127.0.0.1:1/y"),
            CameraSettings(id="door", url="rtsp://x/d"),
        ]
    )
    state = TailState(config)
    now_ns = time.time_ns()
    for camera, age_s in [("bench-1", 3600), ("annex", 5), ("door", 7200), ("attic", 400)]:
        state.on_event(
            CameraEvent(camera_id=camera, event="online", at_ns=now_ns - int(age_s * 1e9), source="x")
        )
    listed = [c["camera_id"] for c in state.cameras_view(hide_after_s=300)]
    assert listed == ["yard", "door", "annex"], "configured first (config order), then fresh ones"
    assert [c["camera_id"] for c in state.cameras_view()] == ["yard", "door", "annex", "attic", "bench-1"]


def test_sse_resumes_after_last_event_id(stack: Stack) -> None:
    """A reconnect with Last-Event-ID gets only the alerts after it; an unknown id gets the backlog."""
    config = stack.fresh_config("sse")
    first = [_alert(config, "sse", i) for i in range(2)]
    _publish(config, first)
    with (
        ServerThread(create_app(config, load_model=False)) as server,
        httpx.Client(base_url=server.url) as client,
    ):
        ids = [a.alert_id for a in first]
        events = _read_sse(client, {}, lambda ev: _alerts_of(ev) == ids)
        last_id = events[-1]["id"]
        boot = last_id.partition(":")[0]

        later = _alert(config, "sse", 2)
        _publish(config, [later])
        resumed = _read_sse(client, {"Last-Event-ID": last_id}, lambda ev: later.alert_id in _alerts_of(ev))
        assert _alerts_of(resumed) == [later.alert_id], "resumed after the last id, nothing resent"
        assert all(e["id"].startswith(boot + ":") for e in resumed)

        # The same id again (a second reconnect from that point) resumes there again.
        again = _read_sse(client, {"Last-Event-ID": last_id}, lambda ev: ev[-1]["event"] == "cameras")
        assert _alerts_of(again) == [later.alert_id]
        # An id from another API process cannot be resumed from: the backlog comes instead.
        other = _read_sse(client, {"Last-Event-ID": "0ther:1"}, lambda ev: ev[-1]["event"] == "cameras")
        assert _alerts_of(other) == [*ids, later.alert_id]
        # After the newest alert: only camera state until something new arrives.
        newest = resumed[-1]["id"]
        quiet = _read_sse(client, {"Last-Event-ID": newest}, lambda ev: ev[-1]["event"] == "cameras")
        assert _alerts_of(quiet) == []


def _frames(config: SightlineConfig, jpeg: bytes, stop: threading.Event, sent: list[int]) -> None:
    """bus.jpg as camera `lobby` at FPS frames per second, on a fixed schedule."""
    producer = make_producer(config.kafka)
    start = time.monotonic()
    seq = 0
    while not stop.is_set():
        meta = FrameMeta("lobby", seq, time.time_ns(), 810, 1080)
        producer.produce(config.topics.frames.name, key=b"lobby", value=jpeg, headers=meta.headers())
        producer.poll(0)
        seq += 1
        sent.append(seq)
        stop.wait(max(0.0, start + seq / FPS - time.monotonic()))
    producer.flush(10)


def _shown_frame(page: Any) -> np.ndarray:
    """The frame the page shows right now, at full size (the <img> drawn onto a canvas)."""
    data_url = page.eval_on_selector(
        '.camera[data-camera="lobby"] img',
        """img => { const c = document.createElement("canvas");
                  c.width = img.naturalWidth; c.height = img.naturalHeight;
                  c.getContext("2d").drawImage(img, 0, 0); return c.toDataURL("image/png"); }""",
    )
    png = base64.b64decode(data_url.split(",", 1)[1])
    return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)


def _edge_share(image: np.ndarray, box: tuple[float, ...], color: tuple[int, int, int]) -> float:
    """Share of points along the box's left, right and bottom edges drawn in `color` (±40 per channel)."""
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    h, w = image.shape[:2]
    points = [(x1, y) for y in range(y1 + 30, y2, 4)] + [(x2, y) for y in range(y1 + 30, y2, 4)]
    points += [(x, y2) for x in range(x1, x2, 4)]
    target = np.asarray(color, np.int16)
    hits = 0
    for x, y in points:
        patch = image[max(0, y - 2) : min(h, y + 3), max(0, x - 2) : min(w, x + 3)].astype(np.int16)
        hits += bool((np.abs(patch - target).max(axis=-1) <= 40).any())
    return hits / len(points)


@pytest.fixture
def live_pipeline(stack: Stack, model_registry: Path, bus_jpg: Path) -> Iterator[tuple]:
    """NanoDet workers on a fresh topic set, bus.jpg frames at 5 fps, the API with its tail."""
    config = stack.fresh_config("live")
    config.inference.registry_dir = model_registry
    config.inference.group_id = f"{config.topics.frames.name}-workers"
    config.cameras = [CameraSettings(id="lobby", url="rtsp://127.0.0.1:1/lobby", fps=FPS)]
    config.api.live_stream_max_s = 3.0  # every stream ends often: the page must reconnect and resume
    config.alerts.rules = RulesSettings.model_validate({
        "cameras": [
            {
                "camera": "lobby",
                "lanes": [
                    {"name": "door", "line": {"start": [100, 900], "end": [700, 900]}},
                    {"name": "desk", "zone": [[20, 20], [200, 20], [200, 200], [20, 200]]},
                ],
            }
        ]
    })  # fmt: skip
    producer = make_producer(config.kafka)
    now = time.time_ns()
    for camera, at_ns in [("bench-old", now - 3600 * 10**9), ("annex", now), ("lobby", now)]:
        event = CameraEvent(camera_id=camera, event="online", at_ns=at_ns, source="rtsp://x/" + camera)
        producer.produce(config.topics.camera_events.name, key=camera.encode(), value=event.encode())
    producer.flush(10)

    stop = threading.Event()
    worker = InferenceWorker(config, worker_id="live", stop=stop)
    threads = [threading.Thread(target=worker.run, name="worker", daemon=True)]
    sent: list[int] = []
    threads.append(threading.Thread(target=_frames, args=(config, bus_jpg.read_bytes(), stop, sent)))
    for thread in threads:
        thread.start()
    app = create_app(config)
    try:
        with ServerThread(app) as server:
            yield config, app, server
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert worker.stats.records > 0 and sent


@needs_chromium
def test_live_view_draws_boxes_at_the_camera_rate_and_shows_each_alert_once(
    live_pipeline: tuple, bus_jpg: Path
) -> None:
    playwright = pytest.importorskip("playwright.sync_api")
    config, app, server = live_pipeline
    alerts = [_alert(config, "live", 0), _alert(config, "live", 1, "critical")]
    _publish(config, [alerts[0], alerts[1], alerts[0]])  # the first one twice: shown once

    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"{server.url}/live")
            page.wait_for_selector('.camera[data-camera="lobby"] img[data-loaded="1"]', timeout=60_000)
            assert page.eval_on_selector('.camera[data-camera="lobby"] img', "img => img.naturalWidth") == 810
            # Configured cameras first; a camera last seen an hour ago is not listed, a fresh one is.
            page.wait_for_selector('.camera[data-camera="annex"]', timeout=15_000)
            order = page.eval_on_selector_all(".camera", "els => els.map(e => e.dataset.camera)")
            assert order == ["lobby", "annex"], order

            # The page shows the camera's real rate: parts counted as they arrive over 5 s.
            page.wait_for_function("cards.get('lobby').times.length >= 20", timeout=60_000)
            shown = page.locator('.camera[data-camera="lobby"] .view').inner_text()
            fps = float(re.search(r"showing ([\d.]+) fps", shown)[1])
            assert FPS * 0.7 <= fps <= FPS * 1.3, shown
            # ...and, once the pipeline has caught up with its start-up backlog (the newest frame
            # shown was captured under 2 s ago), frames arrive at about that rate: a stream, not a
            # poll (wider bounds: on a loaded machine delivery is bursty).
            newest = "cards.get('lobby').times.at(-1)"
            _until(lambda: time.time() * 1000 - page.evaluate(newest) < 2000, "the live edge", 60)
            before, start = page.evaluate("cards.get('lobby').shown"), time.monotonic()
            time.sleep(6.0)
            arrived = (page.evaluate("cards.get('lobby').shown") - before) / (time.monotonic() - start)
            assert FPS * 0.6 <= arrived <= FPS * 1.4, f"{arrived:.1f} frames/s arrived"

            # A box in the overlay colour along the bus's detected edges, on the frame shown.
            record, _ = app.state.tail_state.latest("lobby")
            d = record.detections
            bus = d.class_name.tolist().index("bus")
            color = box_color(d.class_id[bus], d.tracker_id[bus])
            frame = _shown_frame(page)
            assert frame.shape == (1080, 810, 3)
            drawn = _edge_share(frame, d.xyxy[bus], color)
            original = cv2.imread(str(bus_jpg), cv2.IMREAD_COLOR)
            assert _edge_share(original, d.xyxy[bus], color) < 0.2, "the colour must not be there already"
            assert drawn > 0.8, f"only {drawn:.0%} of the bus box edge is drawn"

            # Alerts: each once, across SSE reconnects (each response ends after 3 s).
            page.wait_for_function("document.querySelectorAll('#alerts li').length >= 2", timeout=30_000)
            page.wait_for_function("Number(document.body.dataset.sseOpens || 0) >= 2", timeout=30_000)
            later = _alert(config, "live", 2)
            _publish(config, [later])
            page.wait_for_selector(f'#alerts li[data-alert-id="{later.alert_id}"]', timeout=30_000)
            opens = int(page.evaluate("document.body.dataset.sseOpens"))
            page.wait_for_function(f"Number(document.body.dataset.sseOpens) > {opens}", timeout=30_000)
            listed = page.eval_on_selector_all("#alerts li", "els => els.map(e => e.dataset.alertId)")
            assert sorted(listed) == sorted(a.alert_id for a in [*alerts, later]), listed
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "live-view.png"), full_page=True)
        finally:
            browser.close()


def _read_part(sock: socket.socket, buf: bytearray) -> tuple[dict[str, str], int]:
    """One MJPEG part from a raw socket: its headers and its size."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        assert chunk, "the stream ended"
        buf += chunk
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    fields = dict(line.split(": ", 1) for line in head.decode().split("\r\n") if ": " in line)
    length = int(fields["Content-Length"])
    buf[:] = rest
    while len(buf) < length + 2:
        chunk = sock.recv(65536)
        assert chunk, "the stream ended"
        buf += chunk
    del buf[: length + 2]
    return fields, length


def test_mjpeg_slow_client_skips_frames_instead_of_buffering_them(live_pipeline: tuple) -> None:
    """A client that stops reading for a while then gets the live frame soon, not a backlog."""
    config, app, server = live_pipeline
    config.api.live_stream_max_s = 120.0  # one response for the whole test
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    sock.connect(("127.0.0.1", server.port))
    sock.settimeout(30)
    path = "/v1/cameras/lobby/stream.mjpg"
    sock.sendall(f"GET {path} HTTP/1.0\r\n\r\n".encode())  # 1.0: the body is not chunked
    buf = bytearray()
    while b"\r\n\r\n" not in buf:
        buf += sock.recv(65536)
    status, _, rest = bytes(buf).partition(b"\r\n\r\n")
    assert b" 200 " in status.split(b"\r\n")[0] and b"multipart/x-mixed-replace" in status
    buf[:] = rest
    first, _ = _read_part(sock, buf)
    _until(lambda: app.state.tail_state.latest("lobby")[0].seq > int(first["X-Frame-Seq"]) + 5, "frames", 60)

    stalled = 10.0
    time.sleep(stalled)  # not reading: the server can only buffer what the socket holds, plus one frame
    seqs, sizes = [], []
    while True:
        fields, size = _read_part(sock, buf)
        seqs.append(int(fields["X-Frame-Seq"]))
        sizes.append(size)
        if time.time_ns() - int(fields["X-Capture-Ns"]) < 2e9:
            break  # at the live edge again
        assert len(seqs) < stalled * FPS, "every frame of the stall was kept for this client"
    sock.close()
    skipped = sum(b - a - 1 for a, b in zip([int(first["X-Frame-Seq"]), *seqs], seqs, strict=False))
    assert skipped > 0, seqs
    assert sum(sizes) < stalled * FPS * max(sizes) / 2, "the stall was mostly buffered, not skipped"


@needs_chromium
def test_live_view_login_keeps_the_token_out_of_urls_and_scripts() -> None:
    """With a read token: /live -> login form -> HttpOnly cookie; frames and SSE ride on the cookie.

    When the session goes (here: the cookie is removed), the next reconnect gets 401 and the page
    says so with a link to /login instead of retrying forever.
    """
    playwright = pytest.importorskip("playwright.sync_api")
    token = "live-read-token-0123456789"
    config = SightlineConfig(
        api={"read_token": token, "admin_token": "live-admin-token-9876543210", "live_stream_max_s": 2}
    )
    config.cameras = [CameraSettings(id="lobby", url="rtsp://127.0.0.1:1/x")]
    with (
        ServerThread(create_app(config, tail=False, load_model=False)) as server,
        playwright.sync_playwright() as pw,
    ):
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            context = browser.new_context()
            page = context.new_page()
            requested: list[str] = []
            page.on("request", lambda request: requested.append(request.url))
            page.goto(f"{server.url}/live")
            assert page.url == f"{server.url}/login"
            page.fill('input[name="token"]', "wrong")
            page.click('button[type="submit"]')
            assert page.locator("#error").inner_text() == "That token is not valid."
            page.fill('input[name="token"]', token)
            page.click('button[type="submit"]')
            page.wait_for_url(f"{server.url}/live")
            page.wait_for_function("document.getElementById('status').textContent === 'live'", timeout=15_000)
            page.wait_for_selector('.camera[data-camera="lobby"]', timeout=15_000)
            assert page.evaluate("document.cookie") == "", "the session cookie must be HttpOnly"
            assert page.evaluate("fetch('/v1/cameras').then(r => r.status)") == 200
            assert not page.locator("#auth").is_visible()
            assert not [url for url in requested if token in url or "access_token" in url], requested

            context.clear_cookies()
            page.wait_for_selector("#auth", state="visible", timeout=15_000)
            assert "Log in again" in page.locator("#auth").inner_text()
            assert page.get_attribute("#auth a", "href") == "/login"
            assert page.locator("#status").inner_text() == "not logged in"
        finally:
            browser.close()
