"""Shared test plumbing: config files for the processor subprocess, producing, reading topics."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka import Producer, TopicPartition

import tests.helpers
from schemas.detections import DetectionsRecord
from sightline.config import SightlineConfig
from streams.kafka import make_consumer, make_producer
from streams.processes import stop_process

SECRET_ENV = "SIGHTLINE_TEST_WEBHOOK_SECRET"
SECRET = "test-secret-123"
REPO = Path(__file__).resolve().parents[2]


def alerts_config(
    base: SightlineConfig, rules: dict[str, Any], webhooks: list[dict[str, Any]]
) -> SightlineConfig:
    tag = uuid.uuid4().hex[:8]
    hooks = [{"secret_env": SECRET_ENV, **h} for h in webhooks]
    alerts = {"app_id": f"alerts-{tag}", "redis_prefix": f"test:{tag}", "rules": rules, "webhooks": hooks,
              "batch_wait_ms": 5}  # fmt: skip
    return base.model_copy(update={"alerts": base.alerts.model_validate(alerts)}, deep=True)


def write_config(config: SightlineConfig, path: Path) -> Path:
    data = config.model_dump(mode="json", exclude_none=True)
    data["metrics"]["alerts_port"] = 0
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


class Processor:
    """`sightline alerts run` as a real child process, so it can be killed with SIGKILL."""

    def __init__(self, config_path: Path, log_path: Path) -> None:
        self.config_path = config_path
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Processor:
        env = {**os.environ, SECRET_ENV: SECRET, "PYTHONUNBUFFERED": "1"}
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sightline.cli",
                "alerts",
                "run",
                "--config",
                str(self.config_path),
                "--loglevel",
                "warning",
            ],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        return self

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        stop_process(self.proc, 20)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


def produce(
    config: SightlineConfig, topic: str, items: Iterable[tuple[str, bytes]], producer: Producer | None = None
) -> int:
    producer = producer or make_producer(config.kafka, "test-producer", linger_ms=1)
    n = 0
    for key, value in items:
        producer.produce(topic, key=key.encode(), value=value)
        n += 1
        if n % 1000 == 0:
            producer.poll(0)
    assert producer.flush(30) == 0
    return n


def produce_records(
    config: SightlineConfig, records: Iterable[DetectionsRecord], producer: Producer | None = None
) -> int:
    items = ((r.camera_id, r.encode()) for r in records)
    return produce(config, config.topics.detections.name, items, producer)


def read_topic(config: SightlineConfig, topic: str) -> list[tuple[list[tuple[str, bytes]], bytes]]:
    """All (headers, value) currently on a topic."""
    return [(m.headers() or [], m.value()) for m in tests.helpers.read_topic(config, topic)]


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, proc: Processor | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc is not None and not proc.alive():
            raise AssertionError(f"processor died while waiting for {what}:\n{proc.log()}")
        time.sleep(0.1)
    raise AssertionError(
        f"timed out after {timeout}s waiting for {what}" + (f"\n{proc.log()}" if proc else "")
    )


def committed(config: SightlineConfig, group: str, topic: str) -> tuple[dict[int, int], dict[int, int]]:
    """(committed offsets of `group`, end offsets) per partition of `topic`."""
    consumer = make_consumer(config.kafka, group, "test-offsets")
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        parts = [TopicPartition(topic, p) for p in sorted(meta.partitions)]
        done = {tp.partition: tp.offset for tp in consumer.committed(parts, timeout=10)}
        ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in parts}
    finally:
        consumer.close()
    return done, ends
