"""The review page in headless Chromium, on a running chain: NanoDet boxes on live frames, the
evidence process rendering a real alert, and a reviewer who plays the clip and judges the alert."""

from __future__ import annotations

import base64
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from inference.worker import InferenceWorker
from schemas.alert import AlertRecord, TimeWindow, alert_id
from sightline.api import create_app
from sightline.api.server import ServerThread
from sightline.config import CameraSettings
from sightline.drawing import box_color
from sightline.evidence.service import EvidenceService
from sightline.review.feedback import read_verdicts
from streams.kafka import make_producer
from tests.conftest import Stack
from tests.test_live_view import ARGS, ARTIFACTS, CHROMIUM, FPS, _edge_share, _frames, _until, needs_chromium

pytestmark = pytest.mark.infra  # a real browser

REVIEWER = "review-page-alice-0123456789"
NS = 1_000_000_000


@pytest.fixture
def review_chain(stack: Stack, model_registry: Path, bus_jpg: Path, tmp_path: Path) -> Iterator[tuple]:
    """bus.jpg frames at 5 fps -> NanoDet worker -> detections; the evidence process; the API."""
    config = stack.fresh_config("review")
    config.inference.registry_dir = model_registry
    config.inference.group_id = f"{config.topics.frames.name}-workers"
    config.cameras = [CameraSettings(id="lobby", url="rtsp://127.0.0.1:1/lobby", fps=FPS)]
    config.api = config.api.model_validate(
        {"read_token": "review-page-read-0123456789", "review_tokens": {"alice": REVIEWER}}
    )
    ev = config.evidence
    ev.dir, ev.group_id = tmp_path / "evidence", f"evidence-{uuid.uuid4().hex[:8]}"
    ev.pre_roll_s, ev.post_roll_s, ev.post_roll_wait_s = 2.0, 1.0, 20.0

    stop = threading.Event()
    worker = InferenceWorker(config, worker_id="review", stop=stop)
    evidence = EvidenceService(config, stop)
    sent: list[int] = []
    threads = [
        threading.Thread(target=worker.run, name="worker", daemon=True),
        threading.Thread(target=evidence.run, name="evidence", daemon=True),
        threading.Thread(target=_frames, args=(config, bus_jpg.read_bytes(), stop, sent)),
    ]
    for thread in threads:
        thread.start()
    app = create_app(config, load_model=False)
    try:
        with ServerThread(app) as server:
            yield config, app, server
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)


def _alert(camera: str, type_: str, start_ns: int, now: int) -> AlertRecord:
    return AlertRecord(
        alert_id=alert_id("review-page", camera, uuid.uuid4().hex), type=type_, severity="critical",
        camera_id=camera, rule="bus-at-door", window=TimeWindow(start_ns=start_ns, end_ns=now),
        capture_ns=now, created_ns=now, summary=f"{type_}: a bus at {camera}", evidence={"classes": ["bus"]},
    )  # fmt: skip


def _video_frame(page: Any) -> np.ndarray:
    """The frame the <video> shows now, at the clip's full size."""
    data_url = page.eval_on_selector(
        "#player",
        """v => { const c = document.createElement("canvas"); c.width = v.videoWidth;
                c.height = v.videoHeight; c.getContext("2d").drawImage(v, 0, 0);
                return c.toDataURL("image/png"); }""",
    )
    png = base64.b64decode(data_url.split(",", 1)[1])
    return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)


@needs_chromium
def test_review_page_plays_the_clip_and_records_a_verdict(review_chain: tuple, bus_jpg: Path) -> None:
    playwright = pytest.importorskip("playwright.sync_api")
    config, app, server = review_chain
    state = app.state.tail_state
    # Live boxes first: the alert's clip then has detections from its first frame on.
    _until(
        lambda: (r := state.latest("lobby")[0]) is not None and "bus" in r.detections.class_name, "a bus", 90
    )
    time.sleep(2.5)  # the pre-roll
    now = time.time_ns()
    lobby = _alert("lobby", "threshold", now - NS, now)
    yard = _alert("yard", "tally", now - NS, now - 10 * NS)  # no frames: its evidence never comes
    producer = make_producer(config.kafka)
    for alert in (lobby, yard):
        producer.produce(config.topics.alerts.name, key=alert.camera_id.encode(), value=alert.encode())
    assert producer.flush(10) == 0

    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{server.url}/live/alerts")
            assert page.url == f"{server.url}/login"
            page.fill('input[name="token"]', REVIEWER)
            page.click('button[type="submit"]')
            page.wait_for_url(f"{server.url}/live")
            page.goto(f"{server.url}/live/alerts")
            row = f'#alerts li[data-alert-id="{lobby.alert_id}"]'
            page.wait_for_selector(f'#alerts li[data-alert-id="{yard.alert_id}"]', timeout=30_000)
            order = page.eval_on_selector_all("#alerts li", "els => els.map(e => e.dataset.alertId)")
            assert order == [lobby.alert_id, yard.alert_id], "newest first"
            assert "signed in as alice" in page.locator("#who").inner_text()

            # Filter by camera: only the lobby's alert is left.
            page.select_option('select[name="camera"]', "lobby")
            page.click('#filters button[type="submit"]')
            page.wait_for_function(
                "[...document.querySelectorAll('#alerts li')].map(e => e.dataset.alertId).join() === "
                f"'{lobby.alert_id}'",
                timeout=15_000,
            )

            # The snapshot thumbnail, then the clip once the post-roll has been rendered.
            page.wait_for_selector(f'{row} img.thumb[data-loaded="1"]', timeout=60_000)
            assert page.eval_on_selector(f"{row} img.thumb", "img => img.naturalWidth") == 810
            page.wait_for_selector(f'{row}[data-clip="stored"]', timeout=60_000)
            page.click(f"{row} .summary")
            page.wait_for_function("document.getElementById('player').currentTime > 0.3", timeout=30_000)
            first = page.evaluate("document.getElementById('player').currentTime")
            page.wait_for_function(
                f"document.getElementById('player').currentTime > {first + 0.3}", timeout=10_000
            )
            assert page.evaluate("document.getElementById('player').videoWidth") == 810

            # The pixels show the boxes: the bus's box in its track's colour, on the playing clip.
            page.evaluate("document.getElementById('player').pause()")
            record, _ = state.latest("lobby")
            d = record.detections
            bus = d.class_name.tolist().index("bus")
            color = box_color(d.class_id[bus], d.tracker_id[bus])
            frame = _video_frame(page)
            assert frame.shape == (1080, 810, 3)
            original = cv2.imread(str(bus_jpg), cv2.IMREAD_COLOR)
            assert _edge_share(original, d.xyxy[bus], color) < 0.2, "the colour must not be there already"
            drawn = _edge_share(frame, d.xyxy[bus], color)
            assert drawn > 0.7, f"only {drawn:.0%} of the bus box edge is drawn in the clip"

            # A verdict: written to the feedback topic, shown on the page and by the API.
            page.click(f"{row} button.false-positive")
            page.wait_for_selector(f'{row}[data-verdict="false_positive"]', timeout=15_000)
            assert "false positive by alice" in page.locator(f"{row} .verdict").inner_text()
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "review-page.png"), full_page=True)
            body = page.evaluate(f"fetch('/v1/alerts/{lobby.alert_id}').then(r => r.json())")
            assert body["verdict"]["verdict"] == "false_positive" and body["verdict"]["by"] == "alice"
            assert body["evidence"]["status"] == "complete"
        finally:
            browser.close()
    verdict = read_verdicts(config.kafka, config.topics.feedback.name)[lobby.alert_id]
    assert (verdict.verdict, verdict.by, verdict.camera_id) == ("false_positive", "alice", "lobby")
