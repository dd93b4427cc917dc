"""Reading the chaos benchmark's topics back: frames, committed detections, the alerts a
fault-free run raises from them, and a probe that follows both topics while faults run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

from schemas.detections import DetectionsRecord
from schemas.errors import ContractError
from sightline.bench.chaos_chain import Chain
from sightline.config import SightlineConfig
from streams import topic_reader
from streams.kafka import consumer_config


@dataclass(frozen=True)
class FrameRow:
    camera: str
    seq: int
    capture_ns: int
    partition: int
    offset: int
    ts_ms: int


def read_topic(config: SightlineConfig, topic: str, timeout_s: float = 60.0) -> list[Message]:
    """Every committed record of `topic`, partition by partition in offset order."""
    consumer = Consumer({**consumer_config(config.kafka, f"chaos-audit-{uuid.uuid4().hex}"), "log_level": 0})
    try:
        return list(topic_reader.read_topic(consumer, topic, timeout_s=timeout_s))
    finally:
        consumer.close()


def frame_rows(messages: list[Any]) -> list[FrameRow]:
    rows = []
    for m in messages:
        h = {k: (v or b"").decode() for k, v in m.headers() or []}
        rows.append(FrameRow(h["camera-id"], int(h["seq"]), int(h["capture-ns"]), m.partition(), m.offset(),
                             m.timestamp()[1]))  # fmt: skip
    return rows


def detections(messages: list[Any]) -> list[tuple[DetectionsRecord, int, bytes]]:
    out = []
    for m in messages:
        try:
            out.append((DetectionsRecord.decode(m.value() or b""), m.timestamp()[1], m.value()))
        except ContractError:
            continue
    return out


def replay_alerts(chain: Chain, dets: list[tuple[DetectionsRecord, int, bytes]]) -> list[dict[str, Any]]:
    """`sightline alerts test-rules` over the committed detections, one per (camera, seq):
    what a fault-free run delivers."""
    seen: set[tuple[str, int]] = set()
    path = chain.workdir / "committed-detections.jsonl"
    with path.open("w") as fh:
        for rec, _, value in dets:
            if (rec.camera_id, rec.seq) not in seen:
                seen.add((rec.camera_id, rec.seq))
                fh.write(json.dumps(json.loads(value)) + "\n")
    env = {**os.environ, "SIGHTLINE_CONFIG": str(chain.workdir / "sightline.yaml")}
    done = subprocess.run(
        [sys.executable, "-m", "sightline.cli", "alerts", "test-rules", "--from", str(path),
         "--rules", str(chain.rules_file), "--no-flush"],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"alerts test-rules failed: {done.stderr[-2000:]}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


class Probe:
    """Tails the frames and the committed detections: is every camera's output back?"""

    def __init__(self, config: SightlineConfig) -> None:
        self.consumer = Consumer(
            {**consumer_config(config.kafka, f"chaos-probe-{uuid.uuid4().hex}"), "log_level": 0}
        )
        self.frames, self.detections = config.topics.frames.name, config.topics.detections.name
        assignment = []
        for topic in (self.frames, self.detections):
            parts = topic_reader.partitions_of(self.consumer, topic)
            assignment += [TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts]
        self.consumer.assign(assignment)
        self.frame_ns: dict[tuple[int, int], int] = {}
        self.pending: list[tuple[str, int, int]] = []
        self.newest: dict[str, int] = {}  # camera -> newest frame time (ns) that has its detections
        self.newest_frame: dict[str, int] = {}  # camera -> newest frame time (ns) on the topic
        self.last_detections_ns = 0  # when the last committed detections record was read (wall clock)

    def poll(self, timeout: float) -> None:
        for m in self.consumer.consume(200, timeout):
            if m.error() is not None:
                continue
            if m.topic() == self.frames:
                ts = self.frame_ns[(m.partition(), m.offset())] = m.timestamp()[1] * 1_000_000
                camera = (m.key() or b"").decode(errors="replace")
                self.newest_frame[camera] = max(self.newest_frame.get(camera, 0), ts)
            else:
                self.last_detections_ns = time.time_ns()
                try:
                    rec = json.loads(m.value())
                    self.pending.append((rec["camera_id"], rec["frame"]["partition"], rec["frame"]["offset"]))
                except (ValueError, KeyError, TypeError):
                    continue
        waiting = []
        for camera, partition, offset in self.pending:
            ts = self.frame_ns.get((partition, offset))
            if ts is None:
                waiting.append((camera, partition, offset))
            else:
                self.newest[camera] = max(self.newest.get(camera, 0), ts)
        self.pending = waiting

    def back_since(self, t_ns: int, cameras: list[str]) -> bool:
        """Every camera has a frame newer than `t_ns` with its detections."""
        return all(self.newest.get(c, 0) > t_ns for c in cameras)

    def close(self) -> None:
        self.consumer.close()
