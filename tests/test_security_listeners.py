"""Listeners bind the configured host only, and a taken port is one line naming port and setting."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from streams.health import Health
from streams.http_health import serve_health
from streams.listen import ListenError
from streams.processes import stop_process
from tests.conftest import Stack

REPO = Path(__file__).resolve().parents[1]
OTHER_LOOPBACK = "127.0.0.2"  # on Linux all of 127/8 reaches lo: a 0.0.0.0 listener answers here too


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _accepts(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex((host, port)) == 0


@contextlib.contextmanager
def _taken_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


@pytest.fixture(scope="module")
def other_loopback() -> None:
    """Skip unless a wildcard listener is reachable on 127.0.0.2 (else the probe proves nothing)."""
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        s.listen()
        if not _accepts(OTHER_LOOPBACK, s.getsockname()[1]):
            pytest.skip(f"{OTHER_LOOPBACK} does not reach the loopback interface here")


def _one_line_error(result: subprocess.CompletedProcess[str], port: int, setting: str) -> None:
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in lines if str(port) in line]
    assert len(errors) == 1 and setting in errors[0] and "already in use" in errors[0], result.stderr


def test_metrics_listener_binds_only_the_configured_host(other_loopback: None) -> None:
    port = _free_port()
    server = serve_health(Health("inference"), "127.0.0.1", port, "metrics.inference_port")
    try:
        assert _accepts("127.0.0.1", port)
        assert not _accepts(OTHER_LOOPBACK, port), "the metrics port listens beyond metrics.host"
    finally:
        server.shutdown()


def test_a_taken_metrics_or_drift_port_names_the_setting() -> None:
    with _taken_port() as port:
        with pytest.raises(ListenError, match=rf"127\.0\.0\.1:{port} \(address already in use\).*drift"):
            serve_health(Health("drift"), "127.0.0.1", port, "drift.metrics_port")
        with pytest.raises(ListenError, match="metrics.decoder_port"):
            serve_health(None, "127.0.0.1", port, "metrics.decoder_port")


def test_api_on_a_taken_port_fails_with_one_line() -> None:
    with _taken_port() as port:
        result = subprocess.run(
            [sys.executable, "-m", "sightline.cli", "api", "--port", str(port)],
            capture_output=True, text=True, timeout=120, cwd=REPO,
        )  # fmt: skip
    _one_line_error(result, port, "api.port")


def _alerts_config(stack: Stack, path: Path, port: int) -> Path:
    data = stack.config.model_dump(mode="json", exclude_none=True)
    data["alerts"]["app_id"] = f"listen-{uuid.uuid4().hex[:8]}"
    data["metrics"].update(host="127.0.0.1", alerts_port=port)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _alerts(config: Path) -> list[str]:
    return [sys.executable, "-m", "sightline.cli", "alerts", "run", "--config", str(config)]


def test_alert_processor_metrics_bind_metrics_host(
    stack: Stack, tmp_path: Path, other_loopback: None
) -> None:
    port = _free_port()
    config = _alerts_config(stack, tmp_path / "alerts.yaml", port)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log = (tmp_path / "alerts.log").open("wb")
    proc = subprocess.Popen(_alerts(config), cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not _accepts("127.0.0.1", port):
            assert proc.poll() is None, (tmp_path / "alerts.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the alerts metrics port never opened"
            time.sleep(0.2)
        assert not _accepts(OTHER_LOOPBACK, port), "metrics.alerts_port listens beyond metrics.host"
    finally:
        stop_process(proc, 20)

    with _taken_port() as taken:
        busy = _alerts_config(stack, tmp_path / "busy.yaml", taken)
        result = subprocess.run(
            _alerts(busy), capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env
        )
    _one_line_error(result, taken, "metrics.alerts_port")
