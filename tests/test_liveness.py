"""Liveness that sees a dead loop: /healthz of decoder, inference and alerts (streams/http_health.py).

/metrics is served from a thread of its own, so it answers even when a process's main loop is
hung; /healthz must not. These tests block real loops (a hung publish, a model call that never
returns, a synchronous call inside the alerts event loop) and check that /healthz turns 503 within
the liveness timeout while /metrics still answers, and that an outage of Kafka only makes the
process unready: a loop waiting for the broker is not a dead one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client import REGISTRY

from decoders.camera import CameraRunner
from decoders.runner import run_cameras
from inference.detector import Detector
from inference.worker import InferenceWorker
from schemas.frame import FrameMeta
from sightline.config import CameraSettings, SightlineConfig
from streams.devinfra import free_port
from streams.health import Health
from streams.http_health import HealthServer, serve_health
from streams.kafka import make_producer
from streams.processes import kill_process, stop_processes
from tests.conftest import Stack

REPO = Path(__file__).resolve().parents[1]
TIMEOUT_S = 1.5  # metrics.liveness_timeout_s in these tests (60 s by default)
PUBLISHED = "sightline_decoder_frames_published_total"


def _status(base: str, path: str) -> int:
    return httpx.get(f"{base}{path}", timeout=5).status_code


def _until(what: str, check: Callable[[], bool], timeout: float) -> float:
    """Seconds it took for `check()` to hold; fails after `timeout`."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout, f"timed out waiting for {what}"
        time.sleep(0.1)
    return time.monotonic() - started


def _stays(what: str, check: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert check(), what
        time.sleep(0.2)


@pytest.fixture
def served() -> Iterator[tuple[Health, str]]:
    health = Health("liveness-test")
    server = serve_health(health, "127.0.0.1", 0, "metrics.decoder_port", liveness_timeout_s=TIMEOUT_S)
    try:
        yield health, f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def _loop_thread(health: Health, body: Callable[[Any], None]) -> threading.Thread:
    """A loop thread that registers with `health` and runs `body(heartbeat)` until it returns."""

    def run() -> None:
        with health.loop("test-loop") as heartbeat:
            body(heartbeat)

    thread = threading.Thread(target=run, name="test-loop", daemon=True)
    thread.start()
    return thread


# -- the mechanism, on the real HTTP server --------------------------------------------------------


def test_a_silent_loop_fails_healthz_while_metrics_and_readyz_answer(served: tuple[Health, str]) -> None:
    health, base = served
    assert _status(base, "/healthz") == 200, "no loop watched yet (a model loading): alive"
    hang, stop = threading.Event(), threading.Event()

    def body(heartbeat: Any) -> None:
        while not stop.is_set():
            heartbeat.beat()
            if hang.is_set():
                stop.wait()  # hung: no more beats
            time.sleep(0.05)

    thread = _loop_thread(health, body)
    _stays("a beating loop is alive", lambda: _status(base, "/healthz") == 200, 2 * TIMEOUT_S)
    hang.set()
    took = _until("/healthz 503", lambda: _status(base, "/healthz") == 503, 3 * TIMEOUT_S)
    assert took <= TIMEOUT_S + 1.0
    body_json = httpx.get(f"{base}/healthz").json()
    assert body_json["status"] == "stuck" and not body_json["loops"]["test-loop"]["alive"], body_json
    assert _status(base, "/metrics") == 200 and _status(base, "/readyz") == 200
    stop.set()
    thread.join(5)
    assert _status(base, "/healthz") == 200, "a loop that ended on purpose is no longer watched"


def test_a_loop_retrying_a_dependency_beats_but_another_threads_report_does_not(
    served: tuple[Health, str],
) -> None:
    health, base = served
    stop = threading.Event()

    def retrying(_heartbeat: Any) -> None:  # call_with_retry's shape: report, back off, try again
        while not stop.wait(0.3):
            health.degraded("kafka", "broker unreachable")

    thread = _loop_thread(health, retrying)
    _stays("retrying is not hanging", lambda: _status(base, "/healthz") == 200, 3 * TIMEOUT_S)
    assert _status(base, "/readyz") == 503, "but the process is not ready"
    stop.set()
    thread.join(5)

    stop.clear()
    thread = _loop_thread(health, lambda _hb: stop.wait())  # hung, while a client thread reports

    def report() -> None:  # e.g. librdkafka's error callback on a client thread
        for _ in range(20):
            health.degraded("kafka", "broker unreachable")
            time.sleep(0.2)

    reporter = threading.Thread(target=report, daemon=True)
    reporter.start()
    _until("/healthz 503", lambda: _status(base, "/healthz") == 503, 3 * TIMEOUT_S)
    stop.set()
    thread.join(5)
    reporter.join(10)


def test_a_wait_for_a_dependency_is_excused_only_while_it_is_down(served: tuple[Health, str]) -> None:
    health, base = served
    health.ok("kafka")
    release = threading.Event()

    def waiting(heartbeat: Any) -> None:
        with heartbeat.waiting_on("kafka"):
            release.wait()

    health.degraded("kafka", "all brokers down")
    thread = _loop_thread(health, waiting)
    _stays("waiting out an outage", lambda: _status(base, "/healthz") == 200, 3 * TIMEOUT_S)
    assert httpx.get(f"{base}/healthz").json()["loops"]["test-loop"]["waiting_on"] == "kafka"
    health.ok("kafka")
    assert _status(base, "/healthz") == 200, "silence counts from the moment Kafka came back"
    took = _until("/healthz 503", lambda: _status(base, "/healthz") == 503, 3 * TIMEOUT_S)
    assert took >= TIMEOUT_S - 0.5, "not at once after a long outage"
    release.set()
    thread.join(5)


# -- real processes ------------------------------------------------------------------------------


def _health_server(health: Health) -> tuple[HealthServer, str]:
    server = serve_health(health, "127.0.0.1", 0, "metrics.inference_port", liveness_timeout_s=TIMEOUT_S)
    return server, f"http://127.0.0.1:{server.server_port}"


def test_decoder_with_a_hung_publish_fails_healthz(
    stack: Stack, vtest_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = stack.fresh_config("live-dec")
    config.metrics.liveness_timeout_s = TIMEOUT_S
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    hang, stop = threading.Event(), threading.Event()
    publish = CameraRunner._publish_blocking

    def maybe_hung(self: CameraRunner, meta: FrameMeta, jpeg: bytes) -> bool:
        if hang.is_set():
            stop.wait()  # a produce call that never returns
            return False
        return publish(self, meta, jpeg)

    monkeypatch.setattr(CameraRunner, "_publish_blocking", maybe_hung)
    camera = CameraSettings(id="cam-live", url=str(vtest_path), fps=10, loop=True)
    decoder = threading.Thread(
        target=run_cameras,
        args=(config, [camera], stop),
        kwargs={"metrics_port": port, "realtime": True},
        daemon=True,
    )
    decoder.start()
    try:
        _until("the decoder serving", lambda: _ok(base, "/readyz"), 30)
        _stays("a decoding camera is alive", lambda: _status(base, "/healthz") == 200, 2 * TIMEOUT_S)
        hang.set()
        # The decoding thread runs a few frames ahead (and beats) before it waits for the camera's.
        _until("/healthz 503", lambda: _status(base, "/healthz") == 503, TIMEOUT_S + 10)
        loops = httpx.get(f"{base}/healthz").json()["loops"]
        assert not loops["camera-cam-live"]["alive"] and loops["decoder-producer"]["alive"], loops
        assert _status(base, "/metrics") == 200 and _status(base, "/readyz") == 200
    finally:
        stop.set()
        decoder.join(30)
    assert not decoder.is_alive()


def _ok(base: str, path: str) -> bool:
    try:
        return _status(base, path) == 200
    except httpx.TransportError:
        return False


@pytest.mark.parametrize("in_flight", [8, 64], ids=["pipeline-fills", "loop-keeps-running"])
def test_inference_worker_with_a_model_call_that_never_returns_fails_healthz(
    stack: Stack, model_registry: Path, bus_jpg: Path, monkeypatch: pytest.MonkeyPatch, in_flight: int
) -> None:
    """With room for many batches in flight the consumer loop never blocks on the hung engine:
    the stuck stage itself must stop the beat."""
    config = stack.fresh_config(f"live-inf-{in_flight}")
    config.metrics.liveness_timeout_s = TIMEOUT_S
    config.inference.max_in_flight_batches = in_flight
    config.inference.registry_dir = model_registry
    config.inference.group_id = f"{config.topics.frames.name}-workers"
    config.inference.max_batch = 1  # one batch per frame: the pipeline fills after a few frames
    config.inference.max_wait_ms = 5
    producer = make_producer(config.kafka)
    jpeg = bus_jpg.read_bytes()

    def publish(seqs: range) -> None:
        for seq in seqs:
            meta = FrameMeta("cam-inf", seq, time.time_ns(), 810, 1080)
            producer.produce(config.topics.frames.name, key=b"cam-inf", value=jpeg, headers=meta.headers())
        producer.flush(10)

    hang, release = threading.Event(), threading.Event()
    infer = Detector.infer

    def sleepy(self: Detector, prepared: Any) -> Any:
        if hang.is_set():
            release.wait()  # a GPU call that never comes back
        return infer(self, prepared)

    monkeypatch.setattr(Detector, "infer", sleepy)
    stop = threading.Event()
    worker = InferenceWorker(config, worker_id="liveness", stop=stop)
    server, base = _health_server(worker.health)
    thread = threading.Thread(target=worker.run, name="inference", daemon=True)
    thread.start()
    try:
        publish(range(5))
        _until("the first detections", lambda: worker.stats.records >= 5, 60)
        _stays("a working worker is alive", lambda: _status(base, "/healthz") == 200, 2 * TIMEOUT_S)
        hang.set()
        publish(range(5, 5 + (30 if in_flight <= 8 else 3)))
        _until("/healthz 503", lambda: _status(base, "/healthz") == 503, 60)
        assert httpx.get(f"{base}/healthz").json()["loops"]["inference"]["alive"] is False
        assert _status(base, "/metrics") == 200
    finally:
        stop.set()
        release.set()
        thread.join(60)
        server.shutdown()
        server.server_close()
    assert not thread.is_alive()


def test_decoder_waiting_out_a_broker_outage_is_alive_but_not_ready(
    own_stack: Stack, vtest_path: Path
) -> None:
    config = own_stack.fresh_config("live-out")
    config.metrics.liveness_timeout_s = TIMEOUT_S
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    stop = threading.Event()
    camera = CameraSettings(id="cam-out", url=str(vtest_path), fps=10, loop=True)
    decoder = threading.Thread(
        target=run_cameras,
        args=(config, [camera], stop),
        # A tiny producer queue: the camera soon waits for Kafka inside publish_blocking.
        kwargs={"metrics_port": port, "realtime": True, "producer_options": {"queue_max_messages": 5}},
        daemon=True,
    )
    decoder.start()
    try:
        _until("the decoder serving", lambda: _ok(base, "/readyz"), 30)
        # Past its resume point (a bounded 30 s metadata wait, longer than this test's timeout).
        published = {"camera": "cam-out"}
        _until("frames published", lambda: (REGISTRY.get_sample_value(PUBLISHED, published) or 0) > 0, 30)
        own_stack.dev.kill("kafka")
        _until("/readyz 503", lambda: _status(base, "/readyz") == 503, 30)

        def waiting() -> bool:
            loops = httpx.get(f"{base}/healthz").json()["loops"]
            return loops.get("camera-cam-out", {}).get("waiting_on") == "kafka"

        _until("the camera waiting for Kafka", waiting, 30)
        _stays("alive through the outage", lambda: _status(base, "/healthz") == 200, 4 * TIMEOUT_S)
        assert _status(base, "/readyz") == 503 and _status(base, "/metrics") == 200
    finally:
        own_stack.dev.start("kafka")
    try:
        _until("ready again", lambda: _status(base, "/readyz") == 200, 90)
        _stays("alive after the outage", lambda: _status(base, "/healthz") == 200, 2 * TIMEOUT_S)
    finally:
        stop.set()
        decoder.join(60)
    assert not decoder.is_alive()


# The alert processors as a real process, whose event loop a rule blocks with a synchronous call.
_STUCK_ALERTS = """
import sys, time
import alerts.runner
async def stuck(self, raws):
    time.sleep(3600)
alerts.runner.RulesRunner.process = stuck
from sightline.cli import app
app(["alerts", "run", "--config", sys.argv[1]])
"""


def _alerts_config(stack: Stack, path: Path, port: int) -> Path:
    config: SightlineConfig = stack.fresh_config("live-alerts")
    data = config.model_dump(mode="json", exclude_none=True)
    data["alerts"].update(app_id=f"live-{port}", redis_prefix=f"live:{port}", webhooks=[])
    data["metrics"].update(host="127.0.0.1", alerts_port=port, liveness_timeout_s=TIMEOUT_S)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_alert_processor_with_a_blocked_event_loop_fails_healthz(stack: Stack, tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    config_path = _alerts_config(stack, tmp_path / "alerts.yaml", port)
    config = yaml.safe_load(config_path.read_text())
    log_path = tmp_path / "alerts.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", _STUCK_ALERTS, str(config_path)],
            cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        _until("the alerts endpoint", lambda: proc.poll() is None and _ok(base, "/healthz"), 60)
        assert _status(base, "/readyz") == 200 and _status(base, "/metrics") == 200
        _until("the agent's heartbeat", lambda: "alerts" in httpx.get(f"{base}/healthz").json()["loops"], 30)
        _stays("an idle agent is alive", lambda: _status(base, "/healthz") == 200, 2 * TIMEOUT_S)
        producer = make_producer(stack.config.kafka)
        detections = config["topics"]["detections"]["name"]
        deadline = time.monotonic() + 60
        while _status(base, "/healthz") == 200:  # until the agent has its partitions and takes one
            assert proc.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, log_path.read_text()[-3000:]
            producer.produce(detections, key=b"cam", value=b"{}")
            producer.flush(5)
            time.sleep(0.5)
        assert _status(base, "/metrics") == 200, "served from its own thread all along"
    finally:
        kill_process(proc)  # its event loop is blocked for an hour: SIGTERM's handler would never run


def test_decode_and_infer_commands_serve_health_on_their_metrics_ports(
    stack: Stack, model_registry: Path, vtest_path: Path, tmp_path: Path
) -> None:
    """`sightline decode` and `sightline infer` as real processes: the wiring the probes rely on."""
    from tests.conftest import write_config

    config = stack.fresh_config("live-cli")
    config.inference.registry_dir = model_registry
    config.inference.group_id = f"{config.topics.frames.name}-workers"
    ports = {"decoder": free_port(), "inference": free_port(), "alerts": free_port()}
    config.metrics.host = "127.0.0.1"
    config.metrics.decoder_port, config.metrics.inference_port = ports["decoder"], ports["inference"]
    config.metrics.alerts_port = ports["alerts"]
    config.alerts.rules_file = str(REPO / "alerts" / "demo_rules.yaml")
    config_file = write_config(config, tmp_path / "config.yaml")
    cli = [sys.executable, "-m", "sightline.cli", "-c", str(config_file)]
    commands = {
        "decoder": [
            *cli,
            "decode",
            "--source",
            str(vtest_path),
            "--camera",
            "cam-cli",
            "--fps",
            "5",
            "--realtime",
        ],
        "inference": [*cli, "infer", "--worker-id", "cli"],
        "alerts": [*cli, "alerts", "run"],
    }
    expected_loops = {
        "decoder": {"camera-cam-cli", "decoder-producer"},
        "inference": {"inference"},
        "alerts": {"alerts"},
    }
    log = (tmp_path / "processes.log").open("wb")
    procs = {
        # A fresh working directory, as in a container: nothing may rely on the repo's own folders.
        name: subprocess.Popen(command, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
        for name, command in commands.items()
    }
    try:
        for name, port in ports.items():
            base = f"http://127.0.0.1:{port}"

            def serving(name: str = name, base: str = base) -> bool:
                assert procs[name].poll() is None, (tmp_path / "processes.log").read_text()[-3000:]
                if not _ok(base, "/healthz"):
                    return False
                return expected_loops[name] <= set(httpx.get(f"{base}/healthz").json()["loops"])

            _until(f"{name} serving its loops", serving, 90)
            assert _status(base, "/readyz") == 200, httpx.get(f"{base}/readyz").text
            assert f"sightline_{name}" in httpx.get(f"{base}/metrics").text
            assert httpx.get(f"{base}/healthz").json()["timeout_s"] == 60.0, "metrics.liveness_timeout_s"
    finally:
        stop_processes(procs.values(), 30)
        log.close()
