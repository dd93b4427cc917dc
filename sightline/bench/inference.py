"""Inference benchmark: the pipeline (frames topic -> acked detections) against the bare engine.

All figures come from one run on the same machine, with the same model, batch size and thread
settings, so their ratios say how much the Kafka plumbing (and exactly-once delivery) costs.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from decoders.runner import run_cameras
from inference.detector import Detector
from inference.metrics import FRAME_STAGES
from inference.preprocess import preprocess
from inference.worker import InferenceWorker
from sightline.bench.cleanup import Created, removed_after
from sightline.bench.drain import audit, drain, for_mode, publish_backlog, rebuild_config, relayed
from sightline.config import CameraSettings, SightlineConfig
from streams.processes import stop_processes
from streams.topics import ensure_topics


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def isolated(config: SightlineConfig, tag: str, partitions: int | None = None) -> SightlineConfig:
    """Fresh topics and group so a run never sees another run's records; with `partitions` the
    frames topic (and tracker state, which mirrors it) gets exactly that many: one per worker,
    so every assignor gives each worker one camera's partition."""
    config = config.model_copy(deep=True)
    suffix = f"{tag}-{uuid.uuid4().hex[:6]}"
    for _, topic in config.topics:
        topic.name = f"bench.{suffix}.{topic.name}"
    for topic in (config.topics.frames, config.topics.tracker_state):
        topic.partitions = partitions or topic.partitions
    config.inference.reject_unknown_cameras = False  # the bench's cameras are not in the config
    config.inference.group_id = f"bench-{suffix}"
    ensure_topics(config)
    return config


def native_fps(video: Path) -> float:
    import av

    with av.open(str(video)) as container:
        return float(container.streams.video[0].average_rate or 25)


@dataclass(frozen=True)
class EngineRate:
    fps: float
    cpu_ms_per_frame: float  # process CPU (all ONNX Runtime threads) per frame, engine.run only
    shape: tuple[int, ...]  # the input tensor's shape, batch first


def engine_rate(detector: Detector, tensor: np.ndarray, seconds: float) -> EngineRate:
    """Engine only, on an already prepared batch: the model's own speed and CPU here."""
    batch = tensor.shape[0]
    detector.engine.run(tensor)  # warm-up
    runs, started, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - started < seconds:
        detector.engine.run(tensor)
        runs += 1
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    return EngineRate(runs * batch / wall, cpu * 1e3 / (runs * batch), tuple(tensor.shape))


def square_tensor(detector: Detector, frame: np.ndarray, batch: int) -> np.ndarray:
    """The model's nominal input (manifest size)."""
    return preprocess([frame] * batch, detector.manifest)[0]


def pipeline_tensor(detector: Detector, frame: np.ndarray, batch: int) -> np.ndarray:
    """The tensor the workers really run: `Detector.prepare` picks the smallest letterbox for
    dynamic-H/W models; detectors without it preprocess to the nominal square."""
    prepare = getattr(detector, "prepare", None)
    if prepare is None:
        return square_tensor(detector, frame, batch)
    chunks = prepare([frame] * batch)
    tensor = np.array(chunks[0].tensor, copy=True)  # the chunk's buffer goes back to the pool
    for chunk in chunks:
        chunk.release()
    return tensor


def latency(
    config: SightlineConfig,
    detector: Detector,
    video: Path,
    cameras: int,
    fps: float,
    seconds: float,
    created: Created,
) -> dict[str, Any]:
    """Live load below capacity: `cameras` real-time sources at `fps`; frame age, capture to ack.
    Its topics and group go into `created`, to be deleted when the benchmark ends."""
    config = created.track(isolated(config, "lat"))
    stop = threading.Event()
    worker = InferenceWorker(config, detector=detector, worker_id=f"bench-lat-{os.getpid()}", stop=stop)
    worker_thread = threading.Thread(target=worker.run, name="bench-worker")
    worker_thread.start()
    sources = [CameraSettings(id=f"live{i}", url=str(video), loop=True, fps=fps) for i in range(cameras)]
    # The cameras decode in a process of their own, as decoders do in production: sharing the
    # worker's GIL would add their decode and encode time to the frame age being measured.
    ctx = multiprocessing.get_context("spawn")
    feed_stop = ctx.Event()
    feed = ctx.Process(
        target=_live_cameras,
        args=(config.model_dump(mode="json"), [s.model_dump(mode="json") for s in sources], feed_stop),
        name="bench-cameras",
        daemon=True,
    )
    feed.start()
    time.sleep(min(10.0, seconds / 4))  # warm-up: group join, first batches
    worker.stats.frame_ages_ms.clear()
    worker.stats.frame_stages_ms.clear()
    rss_start = rss_mb()
    time.sleep(seconds)
    rss_end = rss_mb()
    ages = sorted(worker.stats.frame_ages_ms)
    stages = np.array(worker.stats.frame_stages_ms, dtype=np.float64).reshape(-1, len(FRAME_STAGES))
    feed_stop.set()
    stop_processes([feed], 30, terminate=False)
    stop.set()
    worker_thread.join(60)
    if not ages:
        raise RuntimeError("no detections acknowledged during the latency phase")
    return {
        "p50_ms": round(ages[len(ages) // 2], 1),
        "p99_ms": round(ages[min(len(ages) - 1, int(len(ages) * 0.99))], 1),
        "live_fps": round(len(ages) / seconds, 1),
        # Where the age goes, [p50, p99] ms per part (see WorkerStats.frame_stages_ms); the ack
        # after the produce is the rest of p50_ms / p99_ms.
        "frame_age_split_ms": {
            name: [round(float(np.percentile(stages[:, i], q)), 1) for q in (50, 99)]
            for i, name in enumerate(FRAME_STAGES)
        }
        if len(stages)
        else {},
        "rss_mb_start": round(rss_start, 1),
        "rss_mb_end": round(rss_end, 1),
    }


def _live_cameras(dump: dict[str, Any], sources: list[dict[str, Any]], stop: Any) -> None:
    """Real-time cameras until the parent sets `stop` (a multiprocessing event)."""
    cameras = [CameraSettings.model_validate(source) for source in sources]
    run_cameras(rebuild_config(dump), cameras, relayed(stop), metrics_port=0, realtime=True)


MODES = ("at-least-once", "exactly-once")


def first_frame(video: Path) -> np.ndarray:
    import av

    with av.open(str(video)) as container:
        return next(container.decode(video=0)).to_ndarray(format="bgr24")


def run(
    config: SightlineConfig,
    detector: Detector,
    video: Path,
    *,
    batch: int,
    threads: int,
    workers: int = 1,
    make_detector: Callable[[int], Detector] | None = None,
    frames: int = 300,
    rounds: int = 2,
    raw_s: float = 5.0,
    live: bool = True,
    duration: float | None = None,
) -> dict[str, Any]:
    """Raw engine (square and pipeline shape) against the pipeline in both delivery modes.

    `overhead_ms_per_frame` = (CPU of all worker processes from their first fetch to their last
    ack - frames x the engine's CPU per frame at the pipeline's shape, batch and per-worker
    threads) / frames: what the pipeline spends outside `engine.run`. `cpu_ms_per_frame_by_thread`
    splits the same window's CPU by thread (`engine` and `native pools` hold ONNX Runtime's
    threads, `jpeg` the decode pool, `consumer` the Kafka loop, tracking and produce; see
    `drain.thread_group`), so the overhead can be traced to a stage. Every topic and consumer
    group it makes is deleted at the end, also when it fails (after the measurements, so the
    deletion is in none of them).
    """
    with removed_after(config.kafka) as created:
        return _run(config, detector, video, created, batch=batch, threads=threads, workers=workers,
                    make_detector=make_detector, frames=frames, rounds=rounds, raw_s=raw_s, live=live,
                    duration=duration)  # fmt: skip


def _run(
    config: SightlineConfig,
    detector: Detector,
    video: Path,
    created: Created,
    *,
    batch: int,
    threads: int,
    workers: int,
    make_detector: Callable[[int], Detector] | None,
    frames: int,
    rounds: int,
    raw_s: float,
    live: bool,
    duration: float | None,
) -> dict[str, Any]:
    frame = first_frame(video)
    per_worker = max(1, threads // workers)
    if per_worker != threads and make_detector is None:
        raise ValueError("--workers needs a detector factory for the per-worker thread count")
    worker_engine = detector if per_worker == threads else make_detector(per_worker)  # type: ignore[misc]
    square, shaped = square_tensor(detector, frame, batch), pipeline_tensor(detector, frame, batch)
    worker_tensor = pipeline_tensor(worker_engine, frame, batch)
    raw_square: list[float] = []
    raw: list[float] = []
    engine_cpu: list[float] = []
    fps: dict[str, list[float]] = {m: [] for m in MODES}
    cpu: dict[str, list[float]] = {m: [] for m in MODES}
    by_thread: dict[str, list[dict[str, float]]] = {m: [] for m in MODES}
    audits: dict[str, list[dict[str, int]]] = {m: [] for m in MODES}
    for index in range(rounds):  # alternate, so drift in machine speed hits every figure alike
        raw_square.append(engine_rate(detector, square, raw_s).fps)
        rate = engine_rate(detector, shaped, raw_s)
        raw.append(rate.fps)
        if worker_engine is not detector:
            rate = engine_rate(worker_engine, worker_tensor, raw_s)
        engine_cpu.append(rate.cpu_ms_per_frame)
        backlog = created.track(isolated(config, "pipe", partitions=workers))
        backlog.inference.model = detector.manifest.name
        backlog.inference.model_version = detector.manifest.version
        backlog.inference.threads = per_worker
        backlog.inference.max_batch = batch
        publish_backlog(backlog, video, frames, cameras=workers)
        for mode in MODES if index % 2 == 0 else MODES[::-1]:
            drained_config = created.track(for_mode(backlog, mode))
            drained = drain(drained_config, frames, workers)
            fps[mode].append(drained.fps)
            cpu[mode].append(drained.cpu_s * 1e3 / frames)
            by_thread[mode].append({g: s * 1e3 / frames for g, s in drained.threads_cpu_s.items()})
            audits[mode].append(audit(drained_config))
    if worker_engine is not detector:
        worker_engine.close()
    med = statistics.median
    raw_fps, pipe, eos = med(raw), med(fps["at-least-once"]), med(fps["exactly-once"])
    checks = {m: {k: sum(a[k] for a in audits[m]) for k in audits[m][0]} for m in MODES}
    result: dict[str, Any] = {
        "model": f"{detector.manifest.name}:{detector.manifest.version}",
        "batch": batch,
        "threads": threads,
        "workers": workers,
        "threads_per_worker": per_worker,
        "frames": frames,
        "rounds": rounds,
        "input_shape": list(shaped.shape[1:]),
        "input_shape_square": list(square.shape[1:]),
        "raw_fps_square": round(med(raw_square), 1),
        "raw_fps": round(raw_fps, 1),
        "pipeline_fps": round(pipe, 1),
        "ratio": round(pipe / raw_fps, 3),
        "eos_pipeline_fps": round(eos, 1),
        "eos_ratio": round(eos / pipe, 3),
        "engine_cpu_ms_per_frame": round(med(engine_cpu), 2),
        "overhead_ms_per_frame": round(med(cpu["at-least-once"]) - med(engine_cpu), 2),
        "eos_overhead_ms_per_frame": round(med(cpu["exactly-once"]) - med(engine_cpu), 2),
        "cpu_ms_per_frame_by_thread": {m: median_by_key(by_thread[m]) for m in MODES},
        "drain": checks,
        "lost": sum(c["lost"] for c in checks.values()),
        "duplicates": sum(c["duplicates"] for c in checks.values()),
    }
    if not live:
        return result
    # 70% of measured capacity, over at least one camera per batch slot (so the camera count, and
    # with it the bursts the in-phase cameras make, does not change with the measured rate) and
    # more where a camera would have to run faster than the video's native rate.
    load = pipe * 0.7
    cameras = live_cameras(load, native_fps(video), batch)
    measured = latency(config, detector, video, cameras, load / cameras, duration or 30.0, created)
    # The frame-age yardstick: one full batch's engine time at the raw rate (a frame that just
    # missed a running batch waits for it, then for its own).
    batch_ms = round(batch * 1e3 / raw_fps, 1)
    result |= {"latency_cameras": cameras, "latency_load_fps": round(load, 1), "batch_compute_ms": batch_ms}
    result |= measured
    if duration is not None:
        result["rss_growth_pct"] = round(100 * (measured["rss_mb_end"] / measured["rss_mb_start"] - 1), 2)
    return result


def live_cameras(load_fps: float, native: float, batch: int) -> int:
    """Cameras for the live phase: `batch` of them, or more if each would exceed `native` fps."""
    return max(batch, math.ceil(load_fps / native))


def median_by_key(rounds: list[dict[str, float]]) -> dict[str, float]:
    """Per key, the median over rounds (a key missing from a round counts as 0)."""
    keys = {k for r in rounds for k in r}
    return {k: round(statistics.median(r.get(k, 0.0) for r in rounds), 2) for k in keys}


def batch_vs_raw(
    detector: Detector,
    video: Path,
    *,
    batch: int,
    rounds: int = 2,
    raw_s: float = 5.0,
    limit: int | None = None,
) -> dict[str, Any]:
    """`sightline batch` (decode, prepare, engine, finish, tracking, JSON lines to /dev/null) against
    the engine alone on the same video's frames at the same input shape and batch."""
    from sightline.batch import run_batch

    tensor = pipeline_tensor(detector, first_frame(video), batch)
    raws, runs, engine_cpu, batch_cpu = [], [], [], []
    for _ in range(rounds):  # alternate, so drift in machine speed hits both alike
        rate = engine_rate(detector, tensor, raw_s)
        raws.append(rate.fps)
        engine_cpu.append(rate.cpu_ms_per_frame)
        cpu = time.process_time()
        with open(os.devnull, "w") as sink:
            done = run_batch(video, detector, sink, batch=batch, limit=limit, progress=False)
        batch_cpu.append((time.process_time() - cpu) * 1e3 / done["frames"])
        runs.append(done["frames"] / done["seconds"])
    med = statistics.median
    raw, fps = med(raws), med(runs)
    return {
        "model": f"{detector.manifest.name}:{detector.manifest.version}",
        "batch": batch,
        "rounds": rounds,
        "frames": done["frames"],
        "input_shape": list(tensor.shape[1:]),
        "raw_fps": round(raw, 1),
        "batch_fps": round(fps, 1),
        "ratio": round(fps / raw, 3),
        "engine_cpu_ms_per_frame": round(med(engine_cpu), 2),
        "batch_cpu_ms_per_frame": round(med(batch_cpu), 2),
        # The ratio a CPU-bound run reaches (every core busy): engine CPU / all of batch mode's CPU.
        # Less sensitive than `ratio` to other processes sharing the cores.
        "cpu_bound_ratio": round(med(engine_cpu) / med(batch_cpu), 3),
    }
