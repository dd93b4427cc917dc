"""Inference benchmark: the pipeline (frames topic -> acked detections) against the bare engine.

Both figures come from one process on the same machine, with the same model, batch size and
thread settings, so their ratio says how much the Kafka plumbing costs.
"""

from __future__ import annotations

import math
import os
import statistics
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from decoders.runner import run_cameras
from inference.detector import Detector
from inference.preprocess import preprocess
from inference.worker import InferenceWorker
from sightline.config import CameraSettings, SightlineConfig
from streams.topics import ensure_topics


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def isolated(config: SightlineConfig, tag: str) -> SightlineConfig:
    """Fresh topics and group so a run never sees another run's records."""
    config = config.model_copy(deep=True)
    suffix = f"{tag}-{uuid.uuid4().hex[:6]}"
    for _, topic in config.topics:
        topic.name = f"bench.{suffix}.{topic.name}"
    config.inference.group_id = f"bench-{suffix}"
    ensure_topics(config)
    return config


def native_fps(video: Path) -> float:
    import av

    with av.open(str(video)) as container:
        return float(container.streams.video[0].average_rate or 25)


def raw_fps(detector: Detector, frame: np.ndarray, batch: int, seconds: float) -> float:
    """Engine only, on an already preprocessed batch: the model's own speed here."""
    tensor, _ = preprocess([frame] * batch, detector.manifest)
    detector.engine.run(tensor)  # warm-up
    runs, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        detector.engine.run(tensor)
        runs += 1
    return runs * batch / (time.perf_counter() - started)


def pipeline_fps(config: SightlineConfig, detector: Detector, video: Path, frames: int) -> dict[str, Any]:
    """Backlog of `frames` frame records drained by one worker, first fetch to last ack."""
    config = isolated(config, "pipe")
    run_cameras(config, [CameraSettings(id="bench", url=str(video))], metrics_port=0, max_frames=frames)
    worker = InferenceWorker(config, detector=detector, worker_id=f"bench-{os.getpid()}")
    stats = worker.run(max_idle_s=2)
    if stats.records != frames or stats.first_fetch is None or stats.last_ack is None:
        raise RuntimeError(f"pipeline produced {stats.records} records for {frames} frames")
    return {"fps": frames / (stats.last_ack - stats.first_fetch), "batches": stats.batches}


def latency(
    config: SightlineConfig, detector: Detector, video: Path, cameras: int, fps: float, seconds: float
) -> dict[str, Any]:
    """Live load below capacity: `cameras` real-time sources at `fps`; frame age, capture to ack."""
    config = isolated(config, "lat")
    stop = threading.Event()
    worker = InferenceWorker(config, detector=detector, worker_id=f"bench-lat-{os.getpid()}", stop=stop)
    worker_thread = threading.Thread(target=worker.run, name="bench-worker")
    worker_thread.start()
    sources = [CameraSettings(id=f"live{i}", url=str(video), loop=True, fps=fps) for i in range(cameras)]
    feed_stop = threading.Event()
    feed = threading.Thread(
        target=run_cameras, args=(config, sources, feed_stop), kwargs={"metrics_port": 0, "realtime": True}
    )
    feed.start()
    time.sleep(min(10.0, seconds / 4))  # warm-up: group join, first batches
    worker.stats.frame_ages_ms.clear()
    rss_start = rss_mb()
    time.sleep(seconds)
    rss_end = rss_mb()
    ages = sorted(worker.stats.frame_ages_ms)
    feed_stop.set()
    feed.join(30)
    stop.set()
    worker_thread.join(60)
    if not ages:
        raise RuntimeError("no detections acknowledged during the latency phase")
    return {
        "p50_ms": round(ages[len(ages) // 2], 1),
        "p99_ms": round(ages[min(len(ages) - 1, int(len(ages) * 0.99))], 1),
        "live_fps": round(len(ages) / seconds, 1),
        "rss_mb_start": round(rss_start, 1),
        "rss_mb_end": round(rss_end, 1),
    }


def run(
    config: SightlineConfig,
    detector: Detector,
    video: Path,
    *,
    batch: int,
    threads: int,
    frames: int = 300,
    rounds: int = 2,
    duration: float | None = None,
) -> dict[str, Any]:
    import av

    with av.open(str(video)) as container:
        frame = next(container.decode(video=0)).to_ndarray(format="bgr24")
    raws, pipes = [], []
    for _ in range(rounds):  # alternate, so drift in machine speed hits both alike
        raws.append(raw_fps(detector, frame, batch, seconds=8))
        pipes.append(pipeline_fps(config, detector, video, frames)["fps"])
    raw, pipe = statistics.median(raws), statistics.median(pipes)
    # 70% of measured capacity, spread over cameras of at most the video's native rate.
    load = pipe * 0.7
    native = native_fps(video)
    cameras = max(1, math.ceil(load / native))
    live = latency(config, detector, video, cameras, load / cameras, duration or 30.0)
    result: dict[str, Any] = {
        "model": f"{detector.manifest.name}:{detector.manifest.version}",
        "batch": batch,
        "threads": threads,
        "frames": frames,
        "rounds": rounds,
        "raw_fps": round(raw, 1),
        "pipeline_fps": round(pipe, 1),
        "ratio": round(pipe / raw, 3),
        "latency_cameras": cameras,
        "latency_load_fps": round(load, 1),
        **live,
    }
    if duration is not None:
        result["rss_growth_pct"] = round(100 * (live["rss_mb_end"] / live["rss_mb_start"] - 1), 2)
    return result
