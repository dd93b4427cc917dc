"""The chaos benchmark's chain: the demo's processes (`sightline.demo.Demo`) for one delivery
mode, on topics of their own, with stages that a fault can kill and a supervisor restart.

A decoder reads a recorded file at real time (every frame through the Redis claim check), an
inference worker runs in one delivery mode, the alert processors run rules that fire often, and
a local webhook receiver collects the alerts; an RTSP camera with its own decoder joins when
the `rtsp` fault is asked for.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import yaml

from sightline.assets import fetch_registered_model, media_path
from sightline.config import SightlineConfig
from sightline.demo import Demo
from streams.devinfra import DevStack
from streams.topics import ensure_topics

MODES = ("at-least-once", "exactly-once")
CLIP = "vtest.avi"
FPS = 5  # per camera: leaves the worker headroom on a small machine


# -- the chain ---------------------------------------------------------------------------
def camera_rules(camera: str) -> dict[str, Any]:
    """Rules for `vtest.avi` (768x576, people crossing a road) that fire every few seconds."""
    return {
        "camera": camera,
        "anchor": "bottom_center",
        "lateness_s": 1,
        "track_ttl_s": 5,
        "lanes": [
            {
                "name": "road-crossing",
                "line": {"start": [430, 190], "end": [430, 500], "direction": "any", "band_px": 8},
                "classes": ["person"],
                "min_confidence": 0.4,
                "window_s": 10,
                "session": {"idle_gap_s": 5},
            }
        ],
        "defects": [
            {
                "name": "vehicle-parked",
                "classes": ["car", "truck", "bus"],
                "roi": [[590, 40], [768, 40], [768, 135], [590, 135]],
                "min_confidence": 0.3,
                "k": 3,
                "n": 5,
            }
        ],
        "anomalies": [{"name": "people-count", "classes": ["person"], "bucket_s": 2, "warmup_buckets": 3}],
        "thresholds": [
            {"name": "crowd", "metric": "count", "classes": ["person"], "op": ">=", "value": 3,
             "for_s": 1, "cooldown_s": 5},
            {"name": "loiter", "metric": "dwell", "classes": ["person"],
             "zone": [[0, 140], [340, 140], [340, 215], [0, 215]], "op": ">", "value": 3},
        ],
    }  # fmt: skip


class Chain(Demo):
    """The demo's processes for one delivery mode, on fresh topics, with restartable parts."""

    def __init__(self, workdir: Path, base: SightlineConfig, dev: DevStack, mode: str, live: bool) -> None:
        super().__init__(workdir, base)
        self.dev, self.mode, self.live = dev, mode, live
        self.tag = f"chaos-{'eo' if mode == 'exactly-once' else 'alo'}-{uuid.uuid4().hex[:6]}"
        self.file_camera, self.live_camera = f"{self.tag}-file", f"{self.tag}-live"
        self.receivers: list[Any] = []
        self.receiver_port = 0
        self.held: set[str] = set()  # stages a fault keeps down: not restarted by `supervise`
        self.findings: list[str] = []
        self.restart_at: dict[str, float] = {}
        self.commands = {
            "decoder": ("decode", "--camera", self.file_camera, "--realtime"),
            "live-decoder": ("decode", "--camera", self.live_camera),
            "inference": ("infer", "--worker-id", f"{self.tag}-1", "--delivery", mode),
            "inference-standby": ("infer", "--worker-id", f"{self.tag}-2", "--delivery", mode),
            "alerts": ("alerts", "run"),
        }
        self.config = self._sightline_config()

    def _sightline_config(self) -> SightlineConfig:
        topics = {name: t.model_copy(update={"name": f"{self.tag}.{name}"}) for name, t in self.base.topics}
        return self.base.model_copy(update={"topics": self.base.topics.model_copy(update=topics)}, deep=True)

    @property
    def rules_file(self) -> Path:
        return self.workdir / "rules.yaml"

    def _config(self) -> dict[str, Any]:
        data = self.config.model_dump(mode="json")
        cameras = [{"id": self.file_camera, "url": str(media_path(CLIP)), "loop": True, "fps": FPS}]
        if self.relay is not None:
            cameras.append({"id": self.live_camera, "url": self.relay.url(self.live_camera),
                            "rtsp_transport": "udp", "fps": FPS, "stall_timeout_s": 5})  # fmt: skip
        data["cameras"] = cameras
        data["frames"]["inline_max_bytes"] = 1024  # every frame goes through the Redis claim check
        data["inference"].update(registry_dir=str(Path(self.base.inference.registry_dir).resolve()),
                                 group_id=f"{self.tag}-inference", delivery=self.mode)  # fmt: skip
        hook = {"name": "chaos", "url": self.receiver.url, "secret_env": "SIGHTLINE_DEMO_WEBHOOK_SECRET"}
        data["alerts"].update(
            app_id=self.tag,
            redis_prefix=f"sightline:{self.tag}",
            rules_file=str(self.rules_file),
            rules=None,
            webhooks=[hook],
        )
        data["metrics"].update(decoder_port=0, inference_port=0, alerts_port=0)
        data["drift"]["metrics_port"] = 0
        return data

    def start(self, with_api: bool = False) -> None:
        from inference.registry import ModelRegistry
        from sightline.rtsp_camera import RtspRelay

        ensure_topics(self.config)
        fetch_registered_model(self.base.inference.model, ModelRegistry(self.base.inference.registry_dir))
        if self.live:
            self.relay = RtspRelay({self.live_camera: media_path(CLIP)}, log_dir=self.workdir).start()
        self.start_receiver()
        cameras = [self.file_camera] + ([self.live_camera] if self.live else [])
        self.rules_file.write_text(
            yaml.safe_dump({"version": 1, "cameras": [camera_rules(c) for c in cameras]})
        )
        (self.workdir / "sightline.yaml").write_text(yaml.safe_dump(self._config(), sort_keys=False))
        for name in ("decoder", "inference", "alerts") + (("live-decoder",) if self.live else ()):
            self.spawn(name)

    # -- stages --------------------------------------------------------------------------
    def spawn(self, name: str) -> None:
        self._spawn(name, *self.commands[name])

    def kill(self, name: str, sig: signal.Signals = signal.SIGKILL) -> None:
        proc = self.children[name]
        if proc.poll() is None:
            os.killpg(proc.pid, sig)
            if sig == signal.SIGKILL:
                proc.wait()

    def supervise(self) -> None:
        """What a supervisor does: a stage that exited by itself is a finding, and is restarted
        (at most every 2 s, so a crash loop shows as a count rather than a busy loop)."""
        now = time.monotonic()
        for name, proc in list(self.children.items()):
            if name in self.held or proc.poll() is None or now < self.restart_at.get(name, 0.0):
                continue
            self.findings.append(f"{name} exited (rc={proc.returncode})")
            self.restart_at[name] = now + 2.0
            self.spawn(name)

    def start_receiver(self) -> None:
        from alerts.webhooks.receiver import Receiver

        self.receiver = Receiver(self.secret, port=self.receiver_port).start()
        self.receiver_port = self.receiver.port
        self.receivers.append(self.receiver)

    def deliveries(self) -> list[Any]:
        return [d for r in self.receivers for d in list(r.deliveries)]
