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
from sightline.config import CameraSettings
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
