"""The Compose stack built and run for real: a file camera in, detections and a signed webhook out.

`make test-deploy` (scripts/deploy-test.sh) installs Docker and Compose, starts a private dockerd,
builds the images from Debian packages and Maven jars, then runs this module against that engine
($DOCKER_HOST). The stack is compose/docker-compose.yml with compose/docker-compose.local.yml on
top (local images, host networking, ports picked here so it fits beside other services).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import Consumer, TopicPartition

from alerts.webhooks.receiver import Receiver
from sightline.config import load_config
from streams.devinfra import free_port
from streams.paths import repo_root, shared_dir

# Module set-up (images already built) brings the whole stack up: allow it more than the default.
pytestmark = [pytest.mark.deploy, pytest.mark.timeout(1200)]

COMPOSE_DIR = repo_root() / "compose"
FILES = [COMPOSE_DIR / "docker-compose.yml", COMPOSE_DIR / "docker-compose.local.yml"]
PROJECT = "sightline-deploy-test"
LONG_RUNNING = ("kafka", "redis", "decoder", "inference", "alerts", "api", "drift", "evidence", "prometheus")
ONE_SHOT = ("topics", "setup")
PORTS = ("KAFKA", "KAFKA_CONTROLLER", "REDIS", "API", "DECODER", "INFERENCE", "ALERTS", "DRIFT", "PROMETHEUS")
IMAGES = ("sightline:latest", "sightline-local/kafka:4.1.1", "sightline-local/redis:bookworm",
          "sightline-local/prometheus:bookworm")  # fmt: skip
CONFIG = load_config(COMPOSE_DIR / "sightline.yaml")


@dataclass
class Stack:
    env: dict[str, str]
    ports: dict[str, int]
    receiver: Receiver

    def compose(self, *args: str, timeout: float = 600, check: bool = True) -> str:
        files = [arg for f in FILES for arg in ("-f", str(f))]
        result = subprocess.run(
            ["docker", "compose", "-p", PROJECT, *files, *args],
            env=self.env, capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
        if check and result.returncode != 0:
            raise AssertionError(f"docker compose {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def containers(self) -> dict[str, dict[str, Any]]:
        """Service -> its container's `docker inspect` (one replica each in the local stack)."""
        ids = self.compose("ps", "-a", "-q").split()
        if not ids:
            return {}
        inspected = json.loads(
            subprocess.run(["docker", "inspect", *ids], env=self.env, capture_output=True, text=True).stdout
        )
        return {c["Config"]["Labels"]["com.docker.compose.service"]: c for c in inspected}

    def url(self, service: str) -> str:
        port = self.ports[service.upper()]
        path = {"api": "/healthz", "prometheus": "/-/ready"}.get(service, "/metrics")
        return f"http://127.0.0.1:{port}{path}"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.ports['KAFKA']}"


def _engine_ready(env: dict[str, str]) -> str | None:
    """Why the stack cannot run here, or None."""
    if shutil.which("docker") is None:
        return "no docker client"
    if subprocess.run(["docker", "compose", "version"], env=env, capture_output=True).returncode != 0:
        return "no Compose v2 plugin"
    if subprocess.run(["docker", "version"], env=env, capture_output=True).returncode != 0:
        return f"no Docker engine at {env.get('DOCKER_HOST', 'the default socket')}"
    missing = [i for i in IMAGES if subprocess.run(["docker", "image", "inspect", i], env=env,
                                                   capture_output=True).returncode != 0]  # fmt: skip
    return f"images not built: {', '.join(missing)}" if missing else None


def _prometheus_config(ports: dict[str, int], path: Path) -> Path:
    """compose/prometheus.local.yml with the Sightline targets moved to this stack's ports."""
    config = yaml.safe_load((COMPOSE_DIR / "prometheus.local.yml").read_text())
    for job in config["scrape_configs"]:
        name = job["job_name"].removeprefix("sightline-").upper()
        if name in ports:
            job["static_configs"] = [{"targets": [f"127.0.0.1:{ports[name]}"]}]
        elif job["job_name"] == "prometheus":
            job["static_configs"] = [{"targets": [f"127.0.0.1:{ports['PROMETHEUS']}"]}]
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o644)
    return path


def _wait(what: str, check: Callable[[], bool], timeout: float, stack: Stack | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(2)
    states = logs = ""
    if stack:  # each service's state and health first: the log tail may not name the culprit
        states = stack.compose("ps", "-a", "--format", "{{.Service}}: {{.Status}}", check=False)
        logs = stack.compose("logs", "--tail", "30", check=False)
    pytest.fail(f"{what}: not within {timeout:.0f}s\n{states}\n{logs[-6000:]}")


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _end_offsets(bootstrap: str, topic: str) -> int:
    """Records ever written to `topic` (sum of its partitions' high watermarks)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "deploy-test-probe"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return sum(
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions
        )
    finally:
        consumer.close()


def _healthy(stack: Stack, services: tuple[str, ...]) -> Callable[[], bool]:
    def check() -> bool:
        found = stack.containers()
        return all(
            found.get(s, {}).get("State", {}).get("Health", {}).get("Status") == "healthy" for s in services
        )

    return check


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    env = dict(os.environ)
    if reason := _engine_ready(env):
        pytest.skip(f"{reason}; run `make test-deploy`")
    seeds = shared_dir()
    if seeds is None:
        pytest.skip("no ../shared to seed the model and video from (the recipe build takes too long here)")
    ports = {name: free_port() for name in PORTS}
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    receiver = Receiver(secret).start()
    tmp = tmp_path_factory.mktemp("deploy")
    tmp.chmod(0o755)
    hooks = [{"name": "deploy-test", "url": receiver.url, "secret_env": "SL_WEBHOOK_SECRET",
              "max_attempts": 8, "backoff_initial_s": 0.2}]  # fmt: skip
    env.update({f"SL_{name}_PORT": str(port) for name, port in ports.items()})
    env.update(
        SL_WEBHOOKS=json.dumps(hooks),
        SL_WEBHOOK_SECRET=secret,
        SL_SEED_DIR=str(seeds),
        SL_PROMETHEUS_CONFIG=str(_prometheus_config(ports, tmp / "prometheus.yml")),
    )
    result = Stack(env, ports, receiver)
    result.compose("down", "-v", "--remove-orphans", check=False)
    try:
        started = time.monotonic()
        result.compose("up", "-d", timeout=900)
        _wait("every long-running service healthy", _healthy(result, LONG_RUNNING), 300, result)
        print(f"stack up and healthy in {time.monotonic() - started:.0f}s")
        yield result
    finally:
        result.compose("down", "-v", "--remove-orphans", check=False)
        receiver.stop()


def test_every_service_reports_healthy_on_its_endpoint(stack: Stack) -> None:
    containers = stack.containers()
    for service in ONE_SHOT:
        state = containers[service]["State"]
        assert state["Status"] == "exited" and state["ExitCode"] == 0, f"{service}: {state}"
    for service in LONG_RUNNING:
        assert containers[service]["State"]["Health"]["Status"] == "healthy", service
        if service.upper() in stack.ports and service not in ("kafka", "redis"):
            assert _http_ok(stack.url(service)), stack.url(service)


def test_camera_frames_become_detections_and_a_signed_webhook(stack: Stack) -> None:
    topics = CONFIG.topics
    _wait("detections on the detections topic",
          lambda: _end_offsets(stack.bootstrap, topics.detections.name) > 0, 240, stack)  # fmt: skip
    _wait("an alert delivered to the webhook receiver", lambda: bool(stack.receiver.deliveries), 240, stack)
    assert _end_offsets(stack.bootstrap, topics.frames.name) > 0
    deliveries = list(stack.receiver.deliveries)
    assert all(d.verified for d in deliveries) and stack.receiver.bad_signatures == 0
    assert all(d.idempotency_key == d.alert_id for d in deliveries)
    assert all(json.loads(d.body)["camera_id"] == "cam-vtest" for d in deliveries), deliveries[0].body


def test_prometheus_scrapes_every_sightline_service(stack: Stack) -> None:
    port = stack.ports["PROMETHEUS"]

    def all_up() -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/targets", timeout=5) as response:
            targets = json.load(response)["data"]["activeTargets"]
        health = {
            t["labels"]["job"]: t["health"] for t in targets if t["labels"]["job"].startswith("sightline-")
        }
        return len(health) == 5 and set(health.values()) == {"up"}

    _wait("Prometheus: every sightline-* target up", all_up, 60, stack)


def test_a_crashed_worker_is_restarted_and_detections_resume(stack: Stack) -> None:
    detections = CONFIG.topics.detections.name
    before = stack.containers()["inference"]
    # A crash, not `docker kill`: Docker counts a kill as a manual stop and would not restart it.
    os.kill(before["State"]["Pid"], signal.SIGKILL)

    def restarted() -> bool:
        now = stack.containers()["inference"]
        return now["RestartCount"] > before["RestartCount"] and now["State"]["Running"]

    _wait("the restart policy brings the killed worker back", restarted, 60, stack)
    _wait("the worker healthy again", _healthy(stack, ("inference",)), 120, stack)
    after_restart = _end_offsets(stack.bootstrap, detections)
    _wait("new detections after the restart",
          lambda: _end_offsets(stack.bootstrap, detections) > after_restart, 120, stack)  # fmt: skip


def test_kafka_keeps_its_records_when_its_container_is_recreated(stack: Stack) -> None:
    frames = CONFIG.topics.frames.name
    stack.compose("stop", "decoder")
    before = _end_offsets(stack.bootstrap, frames)
    stack.compose("rm", "-f", "-s", "kafka")
    stack.compose("up", "-d", "--no-deps", "kafka")
    _wait("Kafka healthy again", _healthy(stack, ("kafka",)), 180, stack)
    assert _end_offsets(stack.bootstrap, frames) >= before > 0, "the named volume kept the topic's records"
    stack.compose("start", "decoder")
