"""A real Prometheus (Debian package `prometheus`) scrapes a real decoder and inference worker.

It runs on a copy of compose/prometheus.local.yml with the ports rewritten, so the scrape jobs
the deployment ships are the ones exercised; the dashboard's PromQL is then run against it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import start_http_server

from decoders.runner import run_cameras
from inference.metrics import FRAME_STAGES
from inference.worker import InferenceWorker
from sightline.config import CameraSettings, SightlineConfig
from streams.devinfra import free_port
from streams.processes import stop_process
from tests.conftest import Stack
from tests.test_deploy import COMPOSE_DIR, JOB_PORTS, dashboard_exprs

PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(
    PROMETHEUS is None, reason="prometheus is not installed (Debian package `prometheus`; run `make setup`)"
)
CAMERA = "cam-prom"


def _get(url: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


def _query(base: str, expr: str) -> list[dict[str, Any]]:
    body = json.loads(_get(f"{base}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"))
    assert body["status"] == "success", body
    return body["data"]["result"]


def _value(base: str, expr: str) -> float | None:
    result = _query(base, expr)
    return float(result[0]["value"][1]) if result else None


def _wait_for(what: str, check: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = check()
        except OSError:
            result = None
        if result:
            return result
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


def _prometheus_config(ports: dict[str, int]) -> dict[str, Any]:
    """compose/prometheus.local.yml, scraping every second on the given ports."""
    config = yaml.safe_load((COMPOSE_DIR / "prometheus.local.yml").read_text())
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    for job in config["scrape_configs"]:
        [static] = job["static_configs"]
        [target] = static["targets"]
        host, port = target.rsplit(":", 1)
        assert host == "127.0.0.1" and int(port) == JOB_PORTS[job["job_name"]]
        static["targets"] = [f"127.0.0.1:{ports[job['job_name']]}"]
    return config


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[tuple[str, dict[str, int]]]:
    """(base URL, job -> port): Prometheus scraping free ports, one per job of the local config."""
    assert PROMETHEUS is not None
    ports = {job: free_port() for job in JOB_PORTS}
    config_file = tmp_path / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(_prometheus_config(ports)))
    port = free_port()
    log = (tmp_path / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config_file}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for("Prometheus to be ready", lambda: proc.poll() is None and _get(f"{base}/-/ready"), 20)
        yield base, ports
    finally:
        stop_process(proc, 10)
        log.close()
        if proc.returncode not in (0, -15):
            print((tmp_path / "prometheus.log").read_text()[-3000:])


def test_prometheus_scrapes_decoder_and_inference(
    stack: Stack, model_registry: Path, vtest_path: Path, prometheus: tuple[str, dict[str, int]]
) -> None:
    base, ports = prometheus
    config: SightlineConfig = stack.fresh_config("prom")
    config.inference.registry_dir = model_registry
    config.inference.group_id = f"{config.topics.frames.name}-workers"
    stop = threading.Event()
    camera = CameraSettings(id=CAMERA, url=str(vtest_path), fps=10, loop=True)
    decoder = threading.Thread(
        target=run_cameras,
        args=(config, [camera], stop),
        kwargs={"metrics_port": ports["sightline-decoder"], "realtime": True},
        name="decoder",
        daemon=True,
    )
    served = start_http_server(ports["sightline-inference"], addr="127.0.0.1")
    worker = InferenceWorker(config, worker_id="prom", stop=stop)
    inference = threading.Thread(target=worker.run, name="inference", daemon=True)
    decoder.start()
    inference.start()
    try:
        published = f'sightline_decoder_frames_published_total{{job="sightline-decoder",camera="{CAMERA}"}}'
        first = _wait_for("a scraped decoder count", lambda: _value(base, published), 30)
        _wait_for("the decoder count to grow", lambda: (_value(base, published) or 0) > first, 15)
        rate = f'sum(rate(sightline_decoder_frames_published_total{{camera="{CAMERA}"}}[5s]))'
        _wait_for("a positive publish rate", lambda: (_value(base, rate) or 0) > 0, 10)

        consumed = f'sum(sightline_inference_frames_total{{job="sightline-inference",camera="{CAMERA}"}})'
        _wait_for("frames consumed by the worker", lambda: (_value(base, consumed) or 0) > 0, 30)
        ages = 'sum(sightline_inference_frame_age_seconds_count{job="sightline-inference"})'
        _wait_for("frame ages observed", lambda: (_value(base, ages) or 0) > 0, 15)
        stages = 'sightline_inference_frame_stage_seconds_count{job="sightline-inference"}'

        def stages_seen() -> set[str]:
            return {r["metric"]["stage"] for r in _query(base, stages) if float(r["value"][1]) > 0}

        _wait_for("every stage of the frame age observed", lambda: stages_seen() == set(FRAME_STAGES), 15)
        p95 = "histogram_quantile(0.95, sum by (le) (rate(sightline_inference_model_seconds_bucket[10s])))"
        _wait_for("a model latency quantile", lambda: _value(base, p95), 15)

        up = {r["metric"]["job"]: r["value"][1] for r in _query(base, "up")}
        assert up["sightline-decoder"] == "1" and up["sightline-inference"] == "1", up
        assert set(up) == set(JOB_PORTS), "every job of prometheus.local.yml is scraped"

        # The dashboard's queries are valid PromQL, and the core panels have data.
        for expr in dashboard_exprs():
            _query(base, expr.replace("$camera", ".*"))
        fps_in = 'sum by (camera) (rate(sightline_decoder_frames_published_total{camera=~".*"}[1m]))'
        assert _query(base, fps_in)
    finally:
        stop.set()
        decoder.join(30)
        inference.join(30)
        if isinstance(served, tuple):  # prometheus_client >= 0.20 returns (server, thread)
            served[0].shutdown()
    assert not decoder.is_alive() and not inference.is_alive()
