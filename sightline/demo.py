"""The end-to-end demo behind `make run`: two RTSP cameras to signed webhooks, on this machine.

Every stage runs as its own `sightline` process against the local Kafka and Redis, exactly
as it would be deployed; this module only wires them together and prints a summary.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import yaml
from confluent_kafka import KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from prometheus_client.parser import text_string_to_metric_families

from alerts.webhooks.signing import new_secret
from sightline.assets import fetch_registered_model, media_path
from sightline.config import SightlineConfig, load_config
from sightline.rtsp_camera import RtspRelay
from streams.devinfra import DevStack
from streams.kafka import make_admin, make_consumer
from streams.paths import repo_root
from streams.processes import stop_processes
from streams.topics import ensure_topics

CAMERAS = {"cam-vtest": "vtest.avi", "cam-bikes": "bikes.mp4"}


@dataclass(frozen=True)
class StageExit:
    """A stage process that ended while the demo still needed it: the demo fails with this."""

    name: str
    pid: int
    code: int
    log: Path

    def __str__(self) -> str:
        how = f"code {self.code}"
        if self.code < 0:  # Popen reports death by a signal as minus the signal number
            how += f" (killed by {signal.Signals(-self.code).name})"
        return f"stage {self.name} (pid {self.pid}) exited with {how}; see {self.log}"


class Demo:
    def __init__(self, workdir: Path, base: SightlineConfig | None = None) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.base = base or load_config(None)
        self.secret = new_secret()  # Standard Webhooks `whsec_...`
        # Admin token for the API's mutating endpoints: handed to the API process in its
        # environment only (never written into the generated config, never printed). Reads
        # stay open on the loopback-bound demo, so the live view needs no login.
        self.token = secrets.token_urlsafe(24)
        self.evidence_secret = secrets.token_urlsafe(24)  # signs the evidence links in webhook bodies
        self.relay: RtspRelay | None = None
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.receiver: Any = None
        self.stop = threading.Event()
        self.exited: list[StageExit] = []  # stages that ended on their own while running
        self.started_infra = False  # whether this demo started Kafka and Redis (then it stops them)

    # -- set-up --------------------------------------------------------------------------
    def _config(self) -> dict[str, Any]:
        data = self.base.model_dump(mode="json")
        assert self.relay is not None
        data["cameras"] = [
            {"id": cam, "url": self.relay.url(cam), "rtsp_transport": "udp", "fps": 10, "stall_timeout_s": 5}
            for cam in CAMERAS
        ]
        data["inference"]["registry_dir"] = str(Path(self.base.inference.registry_dir).resolve())
        data["alerts"]["rules_file"] = str(repo_root() / "alerts" / "demo_rules.yaml")
        data["alerts"]["webhooks"] = [
            {"name": "demo-receiver", "url": self.receiver.url, "secret_env": "SIGHTLINE_DEMO_WEBHOOK_SECRET",
             "max_attempts": 8, "backoff_initial_s": 0.2}
        ]  # fmt: skip
        # Webhook bodies carry signed links to each alert's snapshot and clip, served by the API.
        api = self.base.api
        data["evidence"]["urls"] = {"secret_env": "SIGHTLINE_DEMO_EVIDENCE_SECRET",
                                    "public_url": f"http://{api.host}:{api.port}"}  # fmt: skip
        return data

    def log_path(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    def _spawn(self, name: str, *args: str) -> None:
        log = self.log_path(name).open("ab")
        env = {**os.environ, "SIGHTLINE_CONFIG": str(self.workdir / "sightline.yaml"),
               "SIGHTLINE_DEMO_WEBHOOK_SECRET": self.secret,
               "SIGHTLINE_DEMO_EVIDENCE_SECRET": self.evidence_secret}  # fmt: skip
        if name == "api":
            env["SIGHTLINE_API__ADMIN_TOKEN"] = self.token
        self.children[name] = subprocess.Popen(
            [sys.executable, "-m", "sightline.cli", *args], stdout=log, stderr=subprocess.STDOUT, env=env,
            start_new_session=True,
        )  # fmt: skip

    def start(self, with_api: bool) -> None:
        from alerts.webhooks.receiver import Receiver
        from inference.registry import ModelRegistry

        say("starting Kafka and Redis ...")
        dev = DevStack(self.base.dev)
        self.started_infra = not any(s.running for s in dev.status())
        dev.up()
        ensure_topics(self.base)
        fetch_registered_model("nanodet-m", ModelRegistry(self.base.inference.registry_dir))
        self.relay = RtspRelay({cam: media_path(clip) for cam, clip in CAMERAS.items()}, log_dir=self.workdir)
        self.relay.start()
        for cam_id, clip in CAMERAS.items():
            say(f"camera {cam_id}: {self.relay.url(cam_id)} (RTSP over UDP, from {clip})")
        self.receiver = Receiver(self.secret).start()
        say(f"webhook receiver: {self.receiver.url} (verifies HMAC signatures)")
        config = self._config()
        (self.workdir / "sightline.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        self._spawn("decoder", "decode")
        self._spawn("inference", "infer", "--worker-id", "demo")
        self._spawn("alerts", "alerts", "run")
        self._spawn("evidence", "evidence")
        if with_api:
            self._spawn("api", "api")
            api = self.base.api
            say(f"live view: http://{api.host}:{api.port}/   (API docs: /docs)")
            say(f"alerts with snapshots and clips: http://{api.host}:{api.port}/live/alerts")
        for name, proc in self.children.items():
            say(f"stage {name}: pid {proc.pid}, log {self.log_path(name)}")

    # -- running summary -----------------------------------------------------------------
    def _offsets(self, admin: AdminClient, consumer: Any, topic: str) -> int:
        partitions = admin.list_topics(topic, timeout=5).topics[topic].partitions
        return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5)[1] for p in partitions)

    def run(self, duration: float | None, until: Callable[[Demo], bool] | None = None) -> dict[str, Any]:
        """Print a summary every 5 s until Ctrl-C, `duration`, a stage exiting, or `until(self)`."""
        admin = make_admin(self.base.kafka, "sightline-demo")
        consumer = make_consumer(self.base.kafka, "demo-summary", "sightline-demo")
        topics = self.base.topics
        names = {
            "frames": topics.frames.name,
            "detections": topics.detections.name,
            "alerts": topics.alerts.name,
        }
        start = {k: self._offsets(admin, consumer, v) for k, v in names.items()}
        started, started_ns, seen = time.monotonic(), time.time_ns(), 0
        summary: dict[str, Any] = {}
        while not self.stop.wait(5):
            counts = {k: self._offsets(admin, consumer, v) - start[k] for k, v in names.items()}
            deliveries = list(self.receiver.deliveries)
            for delivery in deliveries[seen:]:
                latency_ms = (delivery.received_ns - delivery.capture_ns) / 1e6
                alert = f"{delivery.type:10} {delivery.alert_id[:12]}"
                earlier = " (captured before this run)" if delivery.capture_ns < started_ns else ""
                say(f"  webhook ✓ {alert}  capture→webhook {latency_ms:,.0f} ms{earlier}")
                clip = orjson.loads(delivery.body).get("evidence", {}).get("clip_url")
                if clip:
                    say(f"            evidence {clip.split('?')[0]}?…")
            seen = len(deliveries)
            by_type = Counter(d.type for d in deliveries)
            elapsed = time.monotonic() - started
            freshness = worker_freshness(self.base.metrics.inference_port)
            say(f"[{elapsed:5.0f}s] frames {counts['frames']}  detections {counts['detections']}  "
                f"alerts {counts['alerts']}  webhooks {dict(by_type)}{freshness}")  # fmt: skip
            self.exited = [
                StageExit(name, proc.pid, proc.returncode, self.log_path(name))
                for name, proc in self.children.items()
                if proc.poll() is not None
            ]
            if self.exited:
                break
            summary = {**counts, "webhooks": dict(by_type)}
            if (duration and elapsed >= duration) or (until is not None and until(self)):
                break
        consumer.close()
        return summary

    def stop_infra(self, keep: bool = False) -> None:
        """Stop Kafka and Redis if this demo started them; otherwise say they keep running."""
        if self.started_infra and not keep:
            say("stopping Kafka and Redis (started by the demo) ...")
            DevStack(self.base.dev).down()
            return
        why = "were running before the demo" if not self.started_infra else "kept (--keep-infra)"
        say(f"Kafka and Redis {why}: still running; stop them with `sightline dev down`")

    def _backlog(self) -> int:
        """Records the worker and the alert processors have not committed yet (frames, detections)."""
        topics = self.base.topics
        groups = [
            (self.base.inference.group_id, topics.frames.name),
            (self.base.alerts.app_id, topics.detections.name),
        ]
        left = 0
        for group, topic in groups:
            consumer = make_consumer(self.base.kafka, group, "sightline-demo-backlog")
            try:
                meta = consumer.list_topics(topic, timeout=5).topics[topic]
                committed = consumer.committed([TopicPartition(topic, p) for p in meta.partitions], timeout=5)
                for tp in committed:
                    high = consumer.get_watermark_offsets(tp, timeout=5)[1]
                    left += max(0, high - max(tp.offset, 0))
            finally:
                consumer.close()
        return left

    def _settle(self, timeout_s: float) -> None:
        """With the cameras stopped, let the worker and the alert processors finish what they
        sent, so the next run does not start on this one's backlog."""
        say(f"stopping the decoder; the other stages finish its frames (up to {timeout_s:.0f} s) ...")
        stop_processes([self.children["decoder"]], 30)
        deadline = time.monotonic() + timeout_s
        seen: deque[int] = deque(maxlen=6)
        while time.monotonic() < deadline:
            try:
                seen.append(self._backlog())
            except KafkaException:
                break
            # Done at 0, or once nothing moves for 3 s (exactly-once leaves a transaction marker
            # after the last record of a partition, which no consumer commits past).
            if seen[-1] == 0 or (len(seen) == seen.maxlen and len(set(seen)) == 1):
                return
            time.sleep(0.5)
        say(f"{seen[-1] if seen else '?'} records still unprocessed; the next run picks them up")

    def shutdown(self) -> None:
        decoder = self.children.get("decoder")
        if decoder is not None and decoder.poll() is None and not self.exited:
            self._settle(20.0)
        killed = stop_processes(self.children.values(), 30)
        for name, proc in self.children.items():
            if proc in killed:
                say(f"{name} did not stop in 30 s; killed it")
        if self.relay is not None:
            self.relay.kill()
        if self.receiver is not None:
            self.receiver.stop()


def worker_freshness(port: int) -> str:
    """What the worker says of each camera's freshness (its metrics): the age of the newest frame
    it took, and the frames it skipped to stay real time. Empty while the worker is not up."""
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1.0).text
    except httpx.HTTPError:
        return ""
    ages: dict[str, float] = {}
    skipped: Counter[str] = Counter()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            camera = sample.labels.get("camera", "")
            if sample.name == "sightline_inference_camera_frame_age_seconds":
                ages[camera] = sample.value
            elif sample.name == "sightline_inference_frames_skipped_total":
                skipped[camera] += int(sample.value)
    parts = [f"{cam} taken at {age:.1f} s, skipped {skipped[cam]}" for cam, age in sorted(ages.items())]
    return f"\n        worker: {'; '.join(parts)}" if parts else ""


def say(message: str) -> None:
    print(message, flush=True)
