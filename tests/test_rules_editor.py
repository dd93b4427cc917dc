"""The rules editor in headless Chromium, on a running chain: a moving bus (NanoDet boxes, tracks)
crosses where the admin drags a counting line; the draft is tried, saved, drawn on the live view
and raises alerts with the new `rules_version` at the webhook, without any process restarting;
a rollback brings the old line back."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from alerts.webhooks.receiver import Receiver
from inference.worker import InferenceWorker
from schemas.alert import AlertRecord
from schemas.frame import FrameMeta
from sightline.api import create_app
from sightline.api.server import ServerThread
from sightline.config import CameraSettings, SightlineConfig
from sightline.drawing import LINE_COLOR
from streams.kafka import make_producer
from tests.alerts.helpers import SECRET, Processor, alerts_config, wait_for, write_config
from tests.conftest import Stack
from tests.test_live_view import ARGS, ARTIFACTS, CHROMIUM, FPS, _shown_frame, _until, needs_chromium

pytestmark = pytest.mark.infra  # a real browser, broker, Redis, model and alert processor

ADMIN = "rules-editor-admin-0123456789"
OLD = [[100, 1050], [700, 1050]]  # along the bottom edge: nothing ever crosses it
NEW = [[405, 560], [405, 1040]]  # across the bus's path as it moves left and right
RULES = {
    "version": 1,
    "cameras": [
        {
            "camera": "lobby",
            "lateness_s": 1,
            "lanes": [
                {"name": "door", "line": {"start": OLD[0], "end": OLD[1], "band_px": 4}, "window_s": 2}
            ],
        }
    ],
}


def _moving_frames(config: SightlineConfig, bus_jpg: Path, stop: threading.Event) -> None:
    """bus.jpg shifted left and right (±150 px, 25 px a frame) as camera `lobby` at FPS."""
    image = cv2.imread(str(bus_jpg), cv2.IMREAD_COLOR)
    h, w = image.shape[:2]
    offsets = list(range(-150, 151, 25))
    offsets += offsets[-2:0:-1]
    jpegs = []
    for dx in offsets:
        moved = cv2.warpAffine(
            image, np.float32([[1, 0, dx], [0, 1, 0]]), (w, h), borderValue=(114, 114, 114)
        )
        jpegs.append(cv2.imencode(".jpg", moved, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes())
    producer = make_producer(config.kafka)
    start, seq = time.monotonic(), 0
    while not stop.is_set():
        meta = FrameMeta("lobby", seq, time.time_ns(), w, h)
        producer.produce(
            config.topics.frames.name, key=b"lobby", value=jpegs[seq % len(jpegs)], headers=meta.headers()
        )
        producer.poll(0)
        seq += 1
        stop.wait(max(0.0, start + seq / FPS - time.monotonic()))
    producer.flush(10)


def _line_share(image: np.ndarray, a: list[int], b: list[int]) -> float:
    """Share of points along a..b (its middle 80%) drawn in the line colour (±60 per channel)."""
    target = np.asarray(LINE_COLOR, np.int16)
    hits, n = 0, 40
    for i in range(n):
        t = 0.1 + 0.8 * i / (n - 1)
        x, y = int(a[0] + t * (b[0] - a[0])), int(a[1] + t * (b[1] - a[1]))
        patch = image[max(0, y - 3) : y + 4, max(0, x - 3) : x + 4].astype(np.int16)
        hits += bool((np.abs(patch - target).max(axis=-1) <= 60).any())
    return hits / n


@pytest.fixture
def editor_chain(stack: Stack, model_registry: Path, bus_jpg: Path, tmp_path: Path) -> Iterator[tuple]:
    """Moving bus frames -> NanoDet worker -> detections -> `sightline alerts run` (a child
    process) -> webhook receiver; the API with its tail and the rules editor."""
    base = stack.fresh_config("editor", partitions=1)
    base.inference.registry_dir = model_registry
    base.inference.group_id = f"{base.topics.frames.name}-workers"
    base.cameras = [CameraSettings(id="lobby", url="rtsp://127.0.0.1:1/lobby", fps=FPS)]
    stop = threading.Event()
    with Receiver(SECRET) as rx:
        hook = {"name": "ops", "url": rx.url, "backoff_initial_s": 0.05, "backoff_max_s": 0.5}
        config = alerts_config(base, RULES, [hook])
        path = write_config(config, tmp_path / "sightline.yaml")
        config.api = config.api.model_validate({"admin_token": ADMIN, "read_token": ADMIN[::-1]})
        processor = Processor(path, tmp_path / "processor.log").start()
        worker = InferenceWorker(config, worker_id="editor", stop=stop)
        threads = [
            threading.Thread(target=worker.run, name="worker", daemon=True),
            threading.Thread(target=_moving_frames, args=(config, bus_jpg, stop)),
        ]
        for thread in threads:
            thread.start()
        app = create_app(config, load_model=False)
        try:
            with ServerThread(app) as server:
                yield config, app, server, rx, processor
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=30)
            processor.stop()


FRAME = (810, 1080)


def _screen(page: Any, point: list[int]) -> tuple[float, float]:
    """Where a point given in frame pixels is on the screen (the canvas spans the frame)."""
    box = page.locator("#canvas").bounding_box()
    return box["x"] + point[0] * box["width"] / FRAME[0], box["y"] + point[1] * box["height"] / FRAME[1]


def _drag(page: Any, selector: str | None, to: list[int], start: list[int] | None = None) -> None:
    """Press on an element of the canvas (or at a frame point) and release at a frame point."""
    if selector is not None:
        handle = page.locator(selector).bounding_box()
        x0, y0 = handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2
    else:
        assert start is not None
        x0, y0 = _screen(page, start)
    x, y = _screen(page, to)
    page.mouse.move(x0, y0)
    page.mouse.down()
    for step in range(1, 11):  # in steps, as a hand drags
        page.mouse.move(x0 + step / 10 * (x - x0), y0 + step / 10 * (y - y0))
    page.mouse.up()


def _near(got: list[list[float]], want: list[list[int]]) -> bool:
    """Frame points equal within the rounding of one screen pixel."""
    return len(got) == len(want) and all(
        abs(g[0] - w[0]) <= 3 and abs(g[1] - w[1]) <= 3 for g, w in zip(got, want, strict=True)
    )


def _live_line(live: Any, line: list[list[int]], present: bool, what: str) -> None:
    """Wait until the live view's frame shows (or no longer shows) this line."""

    def drawn() -> bool:
        share = _line_share(_shown_frame(live), *line)
        return share > 0.6 if present else share < 0.2

    _until(drawn, what, 60)


def _door_alerts(rx: Receiver) -> list[AlertRecord]:
    alerts = [AlertRecord.decode(d.body) for d in list(rx.deliveries)]
    return [a for a in alerts if a.rule == "door"]


@needs_chromium
@pytest.mark.timeout(900)
def test_drag_a_line_try_it_save_it_see_it_live_and_roll_back(editor_chain: tuple) -> None:
    playwright = pytest.importorskip("playwright.sync_api")
    config, app, server, rx, processor = editor_chain
    pid = processor.proc.pid
    state = app.state.tail_state
    # Enough moving-bus detections for a try: tracks across x=405 several times.
    _until(
        lambda: (
            (r := state.latest("lobby")[0]) is not None and r.seq > 60 and "bus" in r.detections.class_name
        ),
        "the bus's detections",
        240,
    )

    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            context = browser.new_context(viewport={"width": 1500, "height": 1000})
            page = context.new_page()
            requested: list[str] = []
            page.on("request", lambda request: requested.append(request.url))
            page.goto(f"{server.url}/live/rules/lobby")
            assert page.url == f"{server.url}/login"
            page.fill('input[name="token"]', ADMIN)
            page.click('button[type="submit"]')
            page.wait_for_url(f"{server.url}/live")
            live = context.new_page()
            live.goto(f"{server.url}/live")
            page.goto(f"{server.url}/live/rules/lobby")
            page.wait_for_selector("body[data-ready='1']", timeout=30_000)
            page.wait_for_selector("#frame[data-loaded='1']", timeout=30_000)
            assert page.evaluate("[editor.frame.width, editor.frame.height]") == [810, 1080]
            assert page.locator("#version").inner_text() == "version 0 in force"
            live.wait_for_selector('.camera[data-camera="lobby"] img[data-loaded="1"]', timeout=60_000)
            _live_line(live, OLD, True, "the old line on the live view")

            # Drag both ends of the counting line; what is stored is frame pixels.
            door = 'g[data-name="door"][data-kind="line"]'
            _drag(page, f'{door} circle[data-index="0"]', NEW[0])
            _drag(page, f'{door} circle[data-index="1"]', NEW[1])
            line = page.evaluate("editor.block.lanes[0].line")
            assert _near([line["start"], line["end"]], NEW), (line, NEW)
            assert page.locator(f"{door} text.name").text_content() == "door (any)"

            # A polygon: drawn corner by corner, moved whole, named, its shape then its rule deleted.
            corners = [[50, 100], [300, 100], [300, 300], [50, 300]]
            page.select_option("#add-kind", "thresholds|zone|polygon")
            page.click("#add")
            for corner in corners:
                page.mouse.click(*_screen(page, corner))
            page.click("#finish")
            page.wait_for_selector('g[data-kind="polygon"][data-name="threshold-1"]', timeout=5_000)
            assert _near(page.evaluate("editor.block.thresholds[0].zone"), corners)
            _drag(page, None, [275, 250], start=[175, 200])
            moved = [[x + 100, y + 50] for x, y in corners]
            assert _near(page.evaluate("editor.block.thresholds[0].zone"), moved)
            page.fill('input[data-path="thresholds.0.name"]', "desk-crowd")
            assert page.locator('g[data-name="desk-crowd"] text.name').text_content() == "desk-crowd"
            page.click("#delete-shape")
            assert page.evaluate("editor.block.thresholds[0].zone") is None
            assert page.locator('g[data-kind="polygon"]').count() == 0
            page.click('fieldset.rule[data-path="thresholds.0"] button.delete-rule')
            assert page.evaluate("editor.block.thresholds.length") == 0

            # A field the validator refuses: its message next to the field, and no saving.
            band = '[data-path="lanes.0.line.band_px"]'
            page.fill(f"input{band}", "-2")
            err = '.err[data-for="lanes.0.line.band_px"]'
            page.wait_for_function(
                f"document.querySelector('{err}').textContent.includes('greater than or equal to 0')",
                timeout=15_000,
            )
            assert page.is_disabled("#save")
            page.fill(f"input{band}", "4")
            page.wait_for_function("document.body.dataset.valid === 'true'", timeout=15_000)
            assert page.locator(err).inner_text() == ""

            # What would this have raised? The draft's alerts beside the live rules' (none).
            for _ in range(12):
                page.click("#try")
                page.wait_for_function("Number(document.body.dataset.tried || 0) > 0", timeout=60_000)
                if page.locator('#draft-alerts li[data-rule="door"]').count():
                    break
                time.sleep(5)  # a few more crossings
                page.evaluate("document.body.dataset.tried = '0'")
            assert page.locator('#draft-alerts li[data-rule="door"]').count() > 0
            assert page.locator('#live-alerts li[data-rule="door"]').count() == 0
            assert "tally" in page.locator("#draft-alerts li").first.inner_text()

            # Save: version 1, drawn on the live view, alerts labelled 1 at the webhook.
            page.fill("#comment", "door line across the road")
            page.wait_for_function("!document.getElementById('save').disabled", timeout=15_000)
            page.click("#save")
            page.wait_for_selector("body[data-version='1']", timeout=30_000)
            assert "saved as version 1" in page.locator("#save-status").inner_text()
            saved = page.evaluate("fetch('/v1/rules/versions/1').then(r => r.json())")
            assert saved["author"] == "admin (live view)" and saved["comment"] == "door line across the road"
            stored = saved["rules"]["cameras"][0]["lanes"][0]["line"]
            assert [stored["start"], stored["end"]] == [line["start"], line["end"]]
            _live_line(live, NEW, True, "the new line on the live view")
            _live_line(live, OLD, False, "the old line gone from the live view")
            wait_for(lambda: any(a.rules_version == 1 for a in _door_alerts(rx)), 180, "v1 alerts", processor)
            assert {a.rules_version for a in _door_alerts(rx)} == {1}, "the old line is never crossed"
            assert processor.alive() and processor.proc.pid == pid, "the processor was not restarted"
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "rules-editor.png"), full_page=True)

            # Roll back to version 0 from the history: saved as version 2, the old line returns.
            page.wait_for_selector('#history li[data-version="0"] button.rollback', timeout=15_000)
            page.click('#history li[data-version="0"] button.rollback')
            page.wait_for_selector("body[data-version='2']", timeout=30_000)
            assert page.evaluate("editor.block.lanes[0].line.start") == OLD[0]
            assert "(in force)" in page.locator('#history li[data-version="2"]').inner_text()
            _live_line(live, OLD, True, "the old line back on the live view")
            _live_line(live, NEW, False, "the new line gone from the live view")
            shapes = page.evaluate("fetch('/v1/cameras/lobby/overlays').then(r => r.json())")["shapes"]
            assert [s["points"] for s in shapes if s["kind"] == "line"] == [OLD]
            assert processor.alive() and processor.proc.pid == pid
        finally:
            browser.close()
    assert not [u for u in requested if ADMIN in u or ADMIN[::-1] in u or "token" in u], requested
    versions = [a.rules_version for a in _door_alerts(rx)]
    assert versions and set(versions) <= {1, 2}, versions
