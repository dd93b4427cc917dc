"""The chain `sightline bench e2e` runs: the chaos bench's processes with planned cameras, the
overload as a fault that adds cameras, and a tail of the detections topic that stamps arrivals."""

from __future__ import annotations

import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import orjson
import yaml
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from inference.registry import ModelRegistry
from sightline.assets import fetch_registered_model, media_path
from sightline.bench import e2e_stats as stats
from sightline.bench.chaos import CLIP, Chain, Fault
from sightline.config import SightlineConfig
from sightline.rtsp_camera import RtspRelay
from streams.devinfra import DevStack
from streams.kafka import consumer_config
from streams.topic_reader import partitions_of
from streams.topics import ensure_topics

GRID = 3  # rules: one threshold per cell of a GRID x GRID split of the 768x576 frame


def camera_rules(camera: str) -> dict[str, Any]:
    """Alerts that fire every second or two on `vtest.avi`, with no wait of their own."""
    w, h = 768 / GRID, 576 / GRID
    cells = [
        {"name": f"person-{col}{row}", "metric": "count", "classes": ["person"], "min_confidence": 0.4,
         "zone": [[col * w, row * h], [(col + 1) * w, row * h], [(col + 1) * w, (row + 1) * h],
                  [col * w, (row + 1) * h]],
         "op": ">=", "value": 1, "cooldown_s": 1}
        for col in range(GRID) for row in range(GRID)
    ]  # fmt: skip
    return {"camera": camera, "anchor": "bottom_center", "lateness_s": 0, "thresholds": cells}


class E2EChain(Chain):
    """The chaos chain with a planned set of cameras: the normal ones in one decoder, the
    overload's extra RTSP cameras on a relay and decoder of their own, started and stopped."""

    def __init__(
        self, workdir: Path, base: SightlineConfig, dev: DevStack, mode: str, plan: stats.Plan
    ) -> None:
        super().__init__(workdir, base, dev, mode, live=False)
        self.tag = f"e2e-{'eo' if mode == 'exactly-once' else 'alo'}-{uuid.uuid4().hex[:6]}"
        self.config = self._sightline_config()
        self.plan = plan
        self.cameras = plan.cameras(self.tag)
        self.file_camera = next((c.id for c in self.cameras if not c.live), "")  # audit's seq-gap check
        self.overload_relay: RtspRelay | None = None
        self.commands = {
            "decoder": ("--config", str(self.decoder_file(False)), "decode", "--realtime"),
            "decoder-overload": ("--config", str(self.decoder_file(True)), "decode", "--realtime"),
            "inference": ("infer", "--worker-id", f"{self.tag}-1", "--delivery", mode),
            "alerts": ("alerts", "run"),
        }

    def rules(self) -> dict[str, Any]:
        """The rules file's contents (a subclass may alert at another rate)."""
        return {"version": 1, "cameras": [camera_rules(c.id) for c in self.cameras]}

    def decoder_file(self, overload: bool) -> Path:
        return self.workdir / f"decoder-{'overload' if overload else 'normal'}.yaml"

    def camera_config(self, camera: stats.Camera) -> dict[str, Any]:
        relay = self.overload_relay if camera.overload else self.relay
        entry: dict[str, Any] = {"id": camera.id, "fps": self.plan.fps, "freshness": camera.policy}
        if camera.live:
            entry.update(url=relay.url(camera.id), rtsp_transport="udp", stall_timeout_s=5)
        else:
            entry.update(url=str(media_path(CLIP)), loop=True)
        return entry

    def _config(self) -> dict[str, Any]:
        data = super()._config()
        # chaos sends every frame through the Redis claim check; here frames travel as configured
        data["frames"]["inline_max_bytes"] = self.config.frames.inline_max_bytes
        data["cameras"] = [self.camera_config(c) for c in self.cameras]
        return data

    def start(self, with_api: bool = False) -> None:
        ensure_topics(self.config)
        fetch_registered_model(self.base.inference.model, ModelRegistry(self.base.inference.registry_dir))
        for overload in (False, True):
            streams = {c.id: media_path(CLIP) for c in self.cameras if c.live and c.overload == overload}
            relay = RtspRelay(streams, log_dir=self.workdir) if streams else None  # ports chosen now
            if overload:
                self.overload_relay = relay  # started with the overload
            elif relay is not None:
                self.relay = relay.start()
        self.start_receiver()
        self.rules_file.write_text(yaml.safe_dump(self.rules()))
        config = self._config()
        (self.workdir / "sightline.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        for overload in (False, True):
            ids = {c.id for c in self.cameras if c.overload == overload}
            cameras = [c for c in config["cameras"] if c["id"] in ids]
            self.decoder_file(overload).write_text(
                yaml.safe_dump({**config, "cameras": cameras}, sort_keys=False)
            )
        for name in ("decoder", "inference", "alerts"):
            self.spawn(name)

    def stop_stage(self, name: str) -> None:
        """SIGTERM, as an operator stops it; held, so `supervise` does not restart it."""
        self.held.add(name)
        if name in self.children:
            self.kill(name, signal.SIGTERM)
            self.children[name].wait(30)

    def shutdown(self) -> None:
        super().shutdown()
        if self.overload_relay is not None:
            self.overload_relay.kill()


@dataclass
class Overload(Fault):
    """Extra live cameras on top of the normal load: `inject` starts them, `heal` stops them."""

    def inject(self, chain: Chain) -> None:
        assert isinstance(chain, E2EChain)
        if chain.overload_relay is not None:
            chain.overload_relay.start()
        chain.spawn("decoder-overload")

    def heal(self, chain: Chain) -> None:
        assert isinstance(chain, E2EChain)
        chain.stop_stage("decoder-overload")
        if chain.overload_relay is not None:
            chain.overload_relay.kill()


class Seen(NamedTuple):
    """One detections record as the tail saw it."""

    camera: str
    seq: int
    capture_ns: int
    arrived_ns: int
    skipped: bool


class DetectionsTail:
    """The detections topic as the next stage sees it (read_committed), each record stamped
    when it arrives. `poll` is what `ModeRun.tick` calls between supervising the stages."""

    def __init__(self, config: SightlineConfig) -> None:
        self.consumer = Consumer(
            {**consumer_config(config.kafka, f"e2e-tail-{uuid.uuid4().hex}"), "log_level": 0}
        )
        topic = config.topics.detections.name
        self.consumer.assign(
            [TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions_of(self.consumer, topic)]
        )
        self.records: list[Seen] = []
        self.cameras: set[str] = set()  # every camera with a record, skipped or not
        self.newest: dict[str, int] = {}  # camera -> newest capture_ns the model ran on

    def poll(self, timeout: float) -> None:
        """One record per `poll`, so a record is stamped as soon as the consumer has it."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            msg = self.consumer.poll(left)
            if msg is None:
                return
            if msg.error() is not None:
                continue
            arrived = time.time_ns()
            try:  # only the envelope fields: independent of how the boxes are encoded
                rec = orjson.loads(msg.value() or b"")
                row = Seen(
                    rec["camera_id"], rec["seq"], rec["capture_ns"], arrived, rec.get("skipped") is not None
                )
            except (orjson.JSONDecodeError, KeyError, TypeError):
                continue
            self.records.append(row)
            self.cameras.add(row.camera)
            if not row.skipped:
                self.newest[row.camera] = max(self.newest.get(row.camera, 0), row.capture_ns)

    def close(self) -> None:
        self.consumer.close()
