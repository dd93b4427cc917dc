"""`sightline bench alerts`: synthetic detections through the real processor to a real receiver.

Phase 1 (throughput): a backlog of records is published first, then the processor is started
and timed until its Redis checkpoint has covered them all (`records_per_s`, and `boxes_per_s`
for the boxes those records carry). With `processors` > 1 the others (same app id, each its own
static member id) start once a third of the backlog is checkpointed, so the partitions are
rebalanced in the middle of the run. Phase 2 (latency): records are published at a steady rate
with capture time = now, and capture-to-acknowledgement latency is read at the receiver. Every
alert the engine computes offline from the same records must arrive exactly once (`lost` and
`duplicates` both 0).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from alerts.checkpoint import CheckpointStore, connect
from alerts.replay_rules import evaluate
from alerts.settings import RulesSettings
from alerts.synthetic import Box, Walker, box_at, record
from alerts.webhooks.receiver import Receiver
from schemas.detections import DetectionsRecord
from sightline.config import DevSettings, SightlineConfig
from streams.kafka import make_consumer, make_producer
from streams.processes import stop_process
from streams.topic_reader import read_topic
from streams.topics import ensure_topics

SECRET_ENV = "SIGHTLINE_BENCH_WEBHOOK_SECRET"
FPS = 10
ZONE = [[500, 300], [760, 300], [760, 570], [500, 570]]


@dataclass
class BenchOptions:
    records: int = 30_000
    cameras: int = 8
    rate: float = 0.0
    latency_s: float = 20.0
    processors: int = 1
    # Where to write a pyinstrument profile of the first processor (format by suffix), or None.
    profile: Path | None = None


def bench_rules(cameras: list[str]) -> dict[str, Any]:
    """What a real deployment runs per camera: a counting line with sessions, a defect rule,
    a people-count anomaly rule and two threshold rules."""
    per_camera = {
        "lateness_s": 0.5,
        "lanes": [
            {
                "name": "entrance",
                "line": {"start": [0, 288], "end": [768, 288], "band_px": 6},
                "classes": ["person"],
                "window_s": 2,
                "session": {"idle_gap_s": 3},
            },
        ],
        "defects": [
            {
                "name": "damage",
                "classes": ["scratch"],
                "k": 3,
                "n": 5,
                "min_confidence": 0.5,
                "roi": [[0, 0], [768, 0], [768, 576], [0, 576]],
                "critical_confidence": 0.95,
            }
        ],
        "anomalies": [{"name": "crowd", "classes": ["person"], "bucket_s": 2, "warmup_buckets": 5}],
        "thresholds": [
            {
                "name": "crowded",
                "metric": "count",
                "classes": ["person"],
                "op": ">=",
                "value": 7,
                "for_s": 1,
                "cooldown_s": 5,
            },
            {"name": "loiter", "metric": "dwell", "classes": ["person"], "zone": ZONE, "value": 3},
        ],
    }
    return {"cameras": [{"camera": cam, **per_camera} for cam in cameras]}


def camera_frames(seed: int) -> Iterator[list[Box]]:
    """Endless deterministic scene: people crossing, now and then a loiterer and a scratch."""
    rng = random.Random(seed)
    walkers: list[Walker] = []
    next_tid = 1
    frame = 0
    while True:
        if rng.random() < 0.15:
            x = rng.uniform(40, 720)
            down = rng.random() < 0.5
            a, b = ((x, 120.0), (x + rng.uniform(-60, 60), 520.0)) if down else ((x, 520.0), (x, 120.0))
            walkers.append(
                Walker(next_tid, "person", a, b, frame, rng.randrange(20, 45), rng.uniform(0.5, 0.95))
            )
            next_tid += 1
        if rng.random() < 0.01:
            walkers.append(Walker(next_tid, "person", (600, 450), (620, 460), frame, 50))
            next_tid += 1
        if rng.random() < 0.03:
            walkers.append(
                Walker(next_tid, "scratch", (300, 400), (305, 400), frame, 6, rng.uniform(0.6, 0.99))
            )
            next_tid += 1
        boxes = [b for w in walkers if (b := w.at(frame)) is not None]
        boxes += [(box_at(700, 560, 80, 60), 0.9, "car", None)]  # a parked car, untracked
        walkers = [w for w in walkers if frame < w.first_frame + w.frames]
        yield boxes
        frame += 1


class Scenes:
    def __init__(self, cameras: list[str]) -> None:
        self.cameras = cameras
        self.frames = {cam: camera_frames(i) for i, cam in enumerate(cameras)}
        self.seq = dict.fromkeys(cameras, 0)

    def next(self, cam: str, capture_ns: int) -> DetectionsRecord:
        rec = record(cam, self.seq[cam], capture_ns, next(self.frames[cam]), frames_topic="bench.frames")
        self.seq[cam] += 1
        return rec


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _camera_order(records: list[DetectionsRecord], cameras: list[str]) -> list[DetectionsRecord]:
    """The order the processor sees each camera's records in (its partition's order)."""
    index = {cam: i for i, cam in enumerate(cameras)}
    return sorted(records, key=lambda r: (index[r.camera_id], r.seq))


def _wait(predicate: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():
        time.sleep(0.1)


def _committed(config: SightlineConfig) -> int:
    async def read() -> int:
        redis = connect(config.redis.url)
        try:
            offsets = await CheckpointStore(redis, config.alerts.redis_prefix, config.alerts.app_id).offsets()
        finally:
            await redis.aclose()
        prefix = config.topics.detections.name + ":"
        return sum(v + 1 for k, v in offsets.items() if k.startswith(prefix))

    return asyncio.run(read())


def _log_path(tmp: Path, k: int) -> Path:
    return tmp / f"processor-{k}.log"


def _start_processor(
    cfg_path: Path, tmp: Path, k: int, tag: str, secret: str, profile: Path | None
) -> subprocess.Popen[bytes]:
    """`sightline alerts run` number k, its own static member id; under pyinstrument if asked."""
    env = {**os.environ, SECRET_ENV: secret, "SIGHTLINE_ALERTS__INSTANCE_ID": f"{tag}-{k}"}
    command = [sys.executable, "-m"]
    if profile is not None:
        command += ["pyinstrument", "-o", str(profile), "-m"]
        if profile.suffix != ".pyisession":  # a report: with faust's and aiokafka's frames shown
            command[-1:-1] = ["--show-all"]
    command += ["sightline.cli", "alerts", "run", "-c", str(cfg_path)]
    with _log_path(tmp, k).open("wb") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


def _alert_timestamps(config: SightlineConfig) -> dict[str, int]:
    """alert id -> the CreateTime (ms) the processor's producer stamped on its alerts record."""
    consumer = make_consumer(config.kafka, f"bench-read-{uuid.uuid4().hex[:6]}")
    try:
        return {
            json.loads(msg.value())["alert_id"]: msg.timestamp()[1]
            for msg in read_topic(consumer, config.topics.alerts.name)
        }
    finally:
        consumer.close()


def run_bench(
    config: SightlineConfig, options: BenchOptions, *, private_stack: bool, log: Callable[[str], None]
) -> dict[str, Any]:
    """Against the configured dev stack (started if needed), or a private throw-away one."""
    from streams.devinfra import DevStack, free_port

    with tempfile.TemporaryDirectory(prefix="sightline-bench-") as tmp:
        stack = None
        if not private_stack:
            DevStack(config.dev).up()
        else:
            dev = DevSettings(
                kafka_port=free_port(),
                kafka_controller_port=free_port(),
                redis_port=free_port(),
                data_dir=Path(tmp) / "stack",
            )
            stack = DevStack(dev)
            log("starting Kafka and Redis ...")
            stack.up()
            config = config.model_copy(
                update={
                    "kafka": config.kafka.model_copy(update={"bootstrap_servers": stack.bootstrap_servers}),
                    "redis": config.redis.model_copy(update={"url": stack.redis_url}),
                }
            )
        try:
            return _run(config, options, Path(tmp), log)
        finally:
            if stack is not None:
                stack.down()


def _run(
    base: SightlineConfig, options: BenchOptions, tmp: Path, log: Callable[[str], None]
) -> dict[str, Any]:
    tag = f"bench-{uuid.uuid4().hex[:6]}"
    topics = {name: t.model_copy(update={"name": f"{tag}.{name}"}) for name, t in base.topics}
    cameras = [f"bench-cam-{i}" for i in range(options.cameras)]
    rules = bench_rules(cameras)
    receiver = Receiver(secret := uuid.uuid4().hex).start()
    hook = {
        "name": "bench",
        "url": receiver.url,
        "secret_env": SECRET_ENV,
        "concurrency": 16,
        "backoff_initial_s": 0.05,
        "max_attempts": 20,
    }
    alerts = {"app_id": tag, "redis_prefix": f"sightline:{tag}", "rules": rules, "webhooks": [hook]}
    config = base.model_copy(
        update={
            "topics": base.topics.model_copy(update=topics),
            "alerts": base.alerts.model_validate(alerts),
        },
        deep=True,
    )
    ensure_topics(config)
    cfg_path = tmp / "bench.yaml"
    data = config.model_dump(mode="json", exclude_none=True)
    data["metrics"]["alerts_port"] = 0
    cfg_path.write_text(yaml.safe_dump(data))
    producer = make_producer(config.kafka, "sightline-bench")
    det_topic = config.topics.detections.name
    scenes = Scenes(cameras)
    sent: list[DetectionsRecord] = []

    def publish(rec: DetectionsRecord) -> None:
        producer.produce(det_topic, key=rec.camera_id.encode(), value=rec.encode())
        sent.append(rec)

    # Phase 1: a backlog spanning the past few minutes of event time.
    per_cam = max(1, options.records // len(cameras))
    start_ns = time.time_ns() - int((per_cam / FPS + 30) * 1e9)
    for k in range(per_cam):
        for cam in cameras:
            publish(scenes.next(cam, start_ns + k * 1_000_000_000 // FPS))
        producer.poll(0)
    producer.flush(60)
    backlog = len(sent)
    boxes = sum(len(r.detections) for r in sent) / backlog
    log(f"published {backlog} records ({boxes:.1f} boxes each); starting the processor")
    procs = [_start_processor(cfg_path, tmp, 1, tag, secret, options.profile)]
    try:
        t_first = t_done = None
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            done = _committed(config)
            now = time.monotonic()
            if t_first is None and done > 0:
                t_first, first_done = now, done
            if done >= backlog:
                t_done = now
                break
            if len(procs) < options.processors and done >= backlog // 3:
                log(f"{done} records checkpointed; starting {options.processors - 1} more processor(s)")
                procs += [
                    _start_processor(cfg_path, tmp, k, tag, secret, None)
                    for k in range(2, options.processors + 1)
                ]
            for k, proc in enumerate(procs, 1):
                if proc.poll() is not None:
                    raise RuntimeError(f"processor {k} exited: {_log_path(tmp, k).read_text()[-3000:]}")
            time.sleep(0.05)
        if t_first is None or t_done is None:
            raise RuntimeError("processor did not catch up with the backlog in 600 s")
        throughput = (backlog - first_done) / max(t_done - t_first, 1e-6)
        if len(procs) < options.processors:
            raise RuntimeError("the backlog was done before the other processors started; use more --records")
        log(f"throughput phase: {throughput:.0f} records/s; draining its alerts to the receiver")
        rule_set = RulesSettings(**rules)
        backlog_alerts = {a.alert_id for a in evaluate(rule_set, _camera_order(sent, cameras), flush=False)}
        _wait(lambda: backlog_alerts <= set(receiver.ids()), 300)

        # Phase 2: steady load, capture time = now.
        rate = options.rate or max(50.0, 0.3 * throughput)
        # Built up front (capture time is stamped at send) so the load generator stays cheap.
        planned = [
            scenes.next(cameras[k % len(cameras)], 0) for k in range(int(rate * options.latency_s) + 1)
        ]
        phase2_start = time.time_ns()
        interval = 1.0 / rate
        next_at = time.monotonic()
        end_at = next_at + options.latency_s
        i = 0
        while time.monotonic() < end_at and i < len(planned):
            publish(planned[i].replace(capture_ns=time.time_ns()))
            producer.poll(0)
            i += 1
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        producer.flush(60)
        log(f"latency phase: {i} records at {rate:.0f}/s; waiting for deliveries")
        expected = {a.alert_id for a in evaluate(rule_set, _camera_order(sent, cameras), flush=False)}
        _wait(lambda: expected <= set(receiver.ids()), 120)
        time.sleep(1.0)  # a duplicate would show up now
    finally:
        for proc in procs:
            stop_process(proc, 30)
        receiver.stop()
    counts = receiver.ids()
    timed = [d for d in receiver.deliveries if d.capture_ns >= phase2_start]
    latencies = [(d.received_ns - d.capture_ns) / 1e6 for d in timed]
    # Where the time goes: the alert record's Kafka timestamp (set when the processor produced it,
    # ms) splits capture -> published (fetch, batch, engine) from published -> webhook (the
    # delivery agent's fetch, the ledger, HTTP).
    produced_ms = _alert_timestamps(config)
    split = [(d, produced_ms[d.alert_id]) for d in timed if d.alert_id in produced_ms]
    to_created = [(ms * 1e6 - d.capture_ns) / 1e6 for d, ms in split]
    to_received = [(d.received_ns - ms * 1e6) / 1e6 for d, ms in split]
    return {
        "records_per_s": round(throughput, 1),
        "boxes_per_s": round(throughput * boxes),
        "processors": options.processors,
        "p99_ms": round(_percentile(latencies, 0.99), 1),
        "p50_ms": round(_percentile(latencies, 0.50), 1),
        "latency_samples": len(latencies),
        "capture_to_published_p99_ms": round(_percentile(to_created, 0.99), 1),
        "published_to_webhook_p99_ms": round(_percentile(to_received, 0.99), 1),
        "latency_phase_rate": round(rate, 1),
        "lost": len(expected - set(counts)),
        "duplicates": sum(n - 1 for n in counts.values() if n > 1),
        "unexpected": len(set(counts) - expected),
        "alerts": len(expected),
        "records": len(sent),
        "cameras": len(cameras),
        "boxes_per_record": round(boxes, 1),
    }
