"""Decoder benchmark: frames published to Kafka vs the bare decode + JPEG encode rate."""

from __future__ import annotations

import statistics
import threading
import time
from pathlib import Path

import av

from decoders.encode import encode_jpeg
from decoders.runner import run_cameras
from sightline.config import CameraSettings, SightlineConfig


def bare_rate(path: Path, quality: int) -> tuple[int, float]:
    """Decode + encode every frame in-process, nothing else: the ceiling for the decoder."""
    started = time.perf_counter()
    frames = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            encode_jpeg(frame, quality)
            frames += 1
    return frames, frames / (time.perf_counter() - started)


def published_rate(config: SightlineConfig, path: Path, quality: int, camera_id: str) -> tuple[int, float]:
    """Same frames through the real decoder, timed until Kafka has acknowledged all of them."""
    camera = CameraSettings(id=camera_id, url=str(path), jpeg_quality=quality)
    started = time.perf_counter()
    stats = run_cameras(config, [camera], threading.Event(), metrics_port=0)
    elapsed = time.perf_counter() - started  # run_cameras returns after the producer flushed
    sent = stats[camera_id].sent
    return sent, sent / elapsed


def run(config: SightlineConfig, path: Path, rounds: int = 3, quality: int = 85) -> dict[str, float | int]:
    """Alternate the two measurements so drift in machine speed hits both alike."""
    limits, published, frames = [], [], 0
    for i in range(rounds):
        frames, fps = bare_rate(path, quality)
        limits.append(fps)
        sent, fps = published_rate(config, path, quality, f"bench-{int(time.time())}-{i}")
        if sent != frames:
            raise RuntimeError(f"published {sent} frames of {frames}")
        published.append(fps)
    limit, pub = statistics.median(limits), statistics.median(published)
    return {
        "video": path.name,
        "frames": frames,
        "rounds": rounds,
        "limit_fps": round(limit, 1),
        "published_fps": round(pub, 1),
        "ratio": round(pub / limit, 3),
    }
