"""A frames backlog drained by N worker processes in one consumer group, then audited.

Workers run as spawned processes (not threads) so each has its own GIL and ONNX Runtime pool,
as in production; each reports its own CPU time over its drain window, in total and per thread.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import queue
import re
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from confluent_kafka import Consumer, TopicPartition
from pydantic import BaseModel

from decoders.resume import key_partition
from decoders.runner import run_cameras
from sightline.bench.chaos import read_topic
from sightline.config import CameraSettings, SightlineConfig
from streams.kafka import consumer_config
from streams.processes import stop_processes
from streams.topic_reader import partitions_of
from streams.topics import ensure_topics


def spread_cameras(count: int, partitions: int, prefix: str = "bench") -> list[str]:
    """`count` camera ids whose keys land on distinct partitions, so N workers all get work."""
    chosen: list[str] = []
    used: set[int] = set()
    index = 0
    while len(chosen) < count:
        name = f"{prefix}{index}"
        partition = key_partition(name.encode(), partitions)
        if partition not in used or len(used) >= partitions:
            chosen.append(name)
            used.add(partition)
        index += 1
    return chosen


def publish_backlog(config: SightlineConfig, video: Path, frames: int, cameras: int) -> list[str]:
    """`frames` frame records (split over `cameras` sources) on the frames topic; the camera ids."""
    ids = spread_cameras(cameras, config.topics.frames.partitions)
    share = [frames // cameras + (1 if i < frames % cameras else 0) for i in range(cameras)]
    sources = [CameraSettings(id=cam, url=str(video)) for cam in ids]
    for camera, count in zip(sources, share, strict=True):  # max_frames is per camera
        run_cameras(config, [camera], metrics_port=0, max_frames=count)
    return ids


def for_mode(config: SightlineConfig, delivery: str) -> SightlineConfig:
    """Same frames topic, own group and output topics: each delivery mode drains the same backlog."""
    config = config.model_copy(deep=True)
    tag = "eos" if delivery == "exactly-once" else "alo"
    suffix = uuid.uuid4().hex[:6]
    config.inference.delivery = delivery  # type: ignore[assignment]
    config.inference.group_id = f"{config.inference.group_id}-{tag}-{suffix}"
    for name in ("detections", "dead_letter", "tracker_state"):
        topic = getattr(config.topics, name)
        topic.name = f"{topic.name}.{tag}-{suffix}"
    ensure_topics(config)
    return config


_TICKS_PER_S = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def thread_group(python_name: str | None, os_name: str) -> str:
    """Which part of a worker a thread belongs to, for the per-thread CPU breakdown.

    Python threads keep their name less a pool index (``jpeg_0`` -> ``jpeg``; the worker's own loop
    runs on the main thread: ``consumer``); librdkafka names its threads ``rdk:...``; the rest are
    native pools that Python never named (ONNX Runtime's intra-op threads, OpenCV's).
    """
    if python_name is not None:
        return "consumer" if python_name == "MainThread" else re.sub(r"_\d+$", "", python_name)
    return "librdkafka" if os_name.startswith("rdk:") else "native pools"


def thread_cpu_s() -> dict[int, tuple[str, float]]:
    """Per live thread of this process: its group (``thread_group``) and CPU seconds so far; {}
    without /proc."""
    named = {t.native_id: t.name for t in threading.enumerate()}
    threads: dict[int, tuple[str, float]] = {}
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return threads
    for tid in tids:
        try:
            with open(f"/proc/self/task/{tid}/stat") as stat:
                line = stat.read()
        except OSError:  # the thread ended meanwhile
            continue
        os_name = line[line.index("(") + 1 : line.rindex(")")]
        fields = line[line.rindex(")") + 2 :].split()
        cpu = (int(fields[11]) + int(fields[12])) / _TICKS_PER_S  # utime + stime
        threads[int(tid)] = (thread_group(named.get(int(tid)), os_name), cpu)
    return threads


class CpuSampler:
    """Process CPU seconds (and, less often, per thread group) sampled against the monotonic clock.

    Hand-written because the drain window (first fetch .. last ack) is only known afterwards:
    the samples let us read the CPU spent between two past instants by interpolation. The
    per-thread reads cost a /proc read per thread, so they run every ``threads_every`` samples.
    """

    thread_name = "cpu-sampler"

    def __init__(self, period_s: float = 0.02, threads_every: int = 5) -> None:
        self.period_s = period_s
        self.threads_every = threads_every
        self.samples: list[tuple[float, float]] = []
        self.thread_samples: list[tuple[float, dict[str, float]]] = []
        self._threads_seen: dict[int, tuple[str, float]] = {}  # ended threads keep their last CPU
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=self.thread_name, daemon=True)

    def _loop(self) -> None:
        tick = 0
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), time.process_time()))
            if tick % self.threads_every == 0:
                self._sample_threads()
            tick += 1
            self._stop.wait(self.period_s)

    def __enter__(self) -> CpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append((time.monotonic(), time.process_time()))
        self._sample_threads()

    def _sample_threads(self) -> None:
        self._threads_seen.update(thread_cpu_s())
        groups: dict[str, float] = {}
        for group, cpu in self._threads_seen.values():
            groups[group] = groups.get(group, 0.0) + cpu
        self.thread_samples.append((time.monotonic(), groups))

    def between(self, start: float, end: float) -> float:
        at, cpu = np.array(self.samples).T
        return float(np.interp(end, at, cpu) - np.interp(start, at, cpu))

    def threads_between(self, start: float, end: float) -> dict[str, float]:
        """CPU seconds per thread group between two past instants (a group missing from a sample,
        e.g. a thread not started yet, counts as 0 there; a thread that ended keeps the CPU of
        its last sample, so what it used after that is missed)."""
        at = np.array([t for t, _ in self.thread_samples])
        groups = sorted({g for _, sample in self.thread_samples for g in sample})
        out: dict[str, float] = {}
        for group in groups:
            cpu = np.array([sample.get(group, 0.0) for _, sample in self.thread_samples])
            used = float(np.interp(end, at, cpu) - np.interp(start, at, cpu))
            if used > 0:
                out[group] = used
        return out


def rebuild_config(dump: dict[str, Any]) -> SightlineConfig:
    """The parent's config in a child: re-validated (not unpickled, so a field added since the
    parent started gets its default), each section taken as given (the environment already
    applied in the parent must not override the bench's topic names and thread split)."""
    config = SightlineConfig.model_validate(dump)
    for name, value in dump.items():
        section = getattr(config, name)
        if isinstance(section, BaseModel):
            setattr(config, name, type(section).model_validate(value))
    return config


def relayed(parent_event: Any) -> threading.Event:
    """A threading.Event set once ``parent_event`` (a multiprocessing event the parent holds) is:
    the worker and the cameras stop on the former."""
    stop = threading.Event()

    def relay() -> None:
        parent_event.wait()
        stop.set()

    threading.Thread(target=relay, daemon=True, name="bench-stop").start()
    return stop


def _worker_process(dump: dict[str, Any], worker_id: str, done: Any, out: Any) -> None:
    """One production worker (its own detector from the registry) until the parent says the
    group has committed the whole backlog (`done`, a multiprocessing event)."""
    from inference.worker import InferenceWorker

    try:
        config = rebuild_config(dump)
        worker = InferenceWorker(config, worker_id=worker_id, stop=relayed(done))
        with CpuSampler() as cpu:
            stats = worker.run()
        busy = stats.first_fetch is not None and stats.last_ack is not None
        threads = cpu.threads_between(stats.first_fetch, stats.last_ack) if busy else {}
        sampling = threads.pop(cpu.thread_name, 0.0)  # the measurement's own CPU is not the worker's
        out.put({
            "worker": worker_id, "records": stats.records, "frames": stats.frames, "batches": stats.batches,
            "first_fetch": stats.first_fetch, "last_ack": stats.last_ack,
            "cpu_s": cpu.between(stats.first_fetch, stats.last_ack) - sampling if busy else 0.0,
            "threads_cpu_s": threads,
        })  # fmt: skip
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which fails the run
        out.put({"worker": worker_id, "error": repr(exc)})


class GroupLag:
    """Backlog records the consumer group has not committed yet (a fresh topic starts at 0)."""

    def __init__(self, config: SightlineConfig) -> None:
        # Only reads the group's committed offsets: never subscribes, so it never joins the group.
        self.consumer = Consumer(consumer_config(config.kafka, config.inference.group_id, "bench-lag"))
        topic = config.topics.frames.name
        self.partitions = [TopicPartition(topic, p) for p in partitions_of(self.consumer, topic)]
        self.ends = {
            tp.partition: self.consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in self.partitions
        }

    def __call__(self) -> int:
        committed = self.consumer.committed(self.partitions, timeout=10)
        return sum(self.ends[tp.partition] - max(tp.offset, 0) for tp in committed)

    def close(self) -> None:
        self.consumer.close()


@dataclass(frozen=True)
class Drain:
    fps: float
    cpu_s: float  # all workers' CPU over their own drain windows
    threads_cpu_s: dict[str, float]  # the same, per thread group (``thread_group``), summed over workers
    workers: list[dict[str, Any]]


def drain(config: SightlineConfig, frames: int, workers: int, stall_s: float = 120.0) -> Drain:
    """`frames` backlog records over the group's first fetch .. last ack, `workers` processes
    started at once (they join the group, and rebalance it, while the backlog drains). They stop
    once the group has committed every backlog offset, so a slow join or fetch never ends a
    drain early; no commit progress for `stall_s` fails it."""
    ctx = multiprocessing.get_context("spawn")  # fork would copy the parent's Kafka clients and threads
    out, done = ctx.Queue(), ctx.Event()
    dump = config.model_dump(mode="json")
    tag = uuid.uuid4().hex[:6]
    procs = [
        ctx.Process(target=_worker_process, args=(dump, f"bench-{tag}-{i}", done, out), daemon=True)
        for i in range(workers)
    ]
    for proc in procs:
        proc.start()
    lag = GroupLag(config)
    reports: list[dict[str, Any]] = []
    progress, left = time.monotonic(), lag()
    try:
        while len(reports) < workers:
            if not done.is_set():
                now_left = lag()
                progress, left = (time.monotonic(), now_left) if now_left < left else (progress, left)
                if now_left == 0:
                    done.set()
                elif time.monotonic() - progress > stall_s:
                    raise RuntimeError(f"drain: {left} records uncommitted, no progress for {stall_s}s")
            try:
                reports.append(out.get(timeout=0.5))
            except queue.Empty:  # a worker that died reports nothing
                dead = [p for p in procs if p.exitcode not in (None, 0)]
                if dead:
                    raise RuntimeError(f"drain: worker exited with {dead[0].exitcode}") from None
    finally:  # after a failure the others would only wait on: stop them at once
        done.set()
        lag.close()
        stop_processes(procs, 30 if len(reports) == workers else 0, terminate=False)  # `done` asked
    errors = [r["error"] for r in reports if "error" in r]
    if errors:
        raise RuntimeError(f"drain: worker failed: {errors[0]}")
    busy = [r for r in reports if r["first_fetch"] is not None and r["last_ack"] is not None]
    if not busy:
        raise RuntimeError("drain: no worker acknowledged any detections")
    window = max(r["last_ack"] for r in busy) - min(r["first_fetch"] for r in busy)
    by_thread: Counter[str] = Counter()
    for report in busy:
        by_thread.update(report["threads_cpu_s"])
    return Drain(frames / window, sum(r["cpu_s"] for r in busy), dict(by_thread), reports)


def _key(msg: Any) -> tuple[str, int]:
    headers = dict(msg.headers() or [])
    camera, seq = headers.get("camera-id"), headers.get("seq")
    if camera and seq:
        return camera.decode(), int(seq)
    value = json.loads(msg.value())
    return value["camera_id"], int(value["seq"])


def audit(config: SightlineConfig) -> dict[str, int]:
    """Frames published vs committed detections (read_committed): lost and doubled (camera, seq)."""
    published = Counter(_key(m) for m in read_topic(config, config.topics.frames.name))
    detected = Counter(_key(m) for m in read_topic(config, config.topics.detections.name))
    dead = read_topic(config, config.topics.dead_letter.name)
    return {
        "published": len(published),
        "records": sum(detected.values()),
        "lost": len(set(published) - set(detected)),
        "duplicates": sum(n - 1 for n in detected.values()),
        "dead_letters": len(dead),
    }
