"""The live view in headless Chromium (Debian's, driven by Playwright) against a running pipeline."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest

from decoders.runner import run_cameras
from inference.worker import InferenceWorker
from schemas.alert import AlertRecord, TimeWindow, alert_id
from sightline.api import create_app
from sightline.api.server import ServerThread
from sightline.config import CameraSettings, SightlineConfig
from sightline.config.alerts import RulesSettings
from streams.kafka import make_producer
from tests.conftest import Stack

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


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed (scripts/setup.sh)")
def test_live_view_shows_annotated_frames_and_alerts(
    stack: Stack, model_registry: Path, vtest_path: Path
) -> None:
    playwright = pytest.importorskip("playwright.sync_api")
    config = stack.fresh_config("live")
    config.inference.registry_dir = model_registry
    config.inference.group_id = f"{config.topics.frames.name}-workers"
    config.cameras = [CameraSettings(id="lobby", url=str(vtest_path), fps=10)]
    config.alerts.rules = RulesSettings.model_validate({
        "cameras": [
            {
                "camera": "lobby",
                "lanes": [
                    {"name": "door", "line": {"start": [100, 400], "end": [650, 400]}},
                    {"name": "desk", "zone": [[500, 100], [740, 100], [740, 300], [500, 300]]},
                ],
            }
        ]
    })  # fmt: skip

    stop = threading.Event()
    worker = InferenceWorker(config, worker_id="live", stop=stop)
    worker_thread = threading.Thread(target=worker.run, name="worker", daemon=True)
    worker_thread.start()
    with ServerThread(create_app(config)) as server:
        run_cameras(config, config.cameras, max_frames=40, metrics_port=0)
        producer = make_producer(config.kafka)
        now = time.time_ns()
        for i, (kind, severity) in enumerate([("threshold", "warning"), ("defect", "critical")]):
            alert = AlertRecord(
                alert_id=alert_id("live-test", i),
                type=kind,
                severity=severity,
                camera_id="lobby",
                rule=f"rule-{i}",
                window=TimeWindow(start_ns=now, end_ns=now),
                capture_ns=now,
                created_ns=now,
                summary=f"live test alert {i}",
            )
            producer.produce(config.topics.alerts.name, key=b"lobby", value=alert.encode())
        producer.flush(10)

        with playwright.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 720})
                page.goto(f"{server.url}/live")
                page.wait_for_selector('.camera[data-camera="lobby"] img[data-loaded="1"]', timeout=60_000)
                page.wait_for_function("document.querySelectorAll('#alerts li').length >= 2", timeout=30_000)
                width = page.eval_on_selector('.camera[data-camera="lobby"] img', "img => img.naturalWidth")
                assert width == 768
                texts = page.locator("#alerts li .summary").all_inner_texts()
                assert {"live test alert 0", "live test alert 1"} <= set(texts)
                page.wait_for_function(
                    "document.querySelector('.camera .state').textContent !== ''", timeout=10_000
                )
                ARTIFACTS.mkdir(exist_ok=True)
                page.screenshot(path=str(ARTIFACTS / "live-view.png"), full_page=True)
            finally:
                browser.close()
    stop.set()
    worker_thread.join(timeout=30)
    assert worker.stats.records > 0


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed (scripts/setup.sh)")
def test_live_view_login_keeps_the_token_out_of_urls_and_scripts() -> None:
    """With a read token: /live -> login form -> HttpOnly cookie; frames and SSE ride on the cookie."""
    playwright = pytest.importorskip("playwright.sync_api")
    token = "live-read-token-0123456789"
    config = SightlineConfig(api={"read_token": token, "admin_token": "live-admin-token-9876543210"})
    config.cameras = [CameraSettings(id="lobby", url="rtsp://127.0.0.1:1/x")]
    with (
        ServerThread(create_app(config, tail=False, load_model=False)) as server,
        playwright.sync_playwright() as pw,
    ):
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page()
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
            assert not [url for url in requested if token in url or "access_token" in url], requested
        finally:
            browser.close()
