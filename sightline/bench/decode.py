"""Decoder benchmark: frames published to Kafka vs the bare decode + JPEG encode rate.

The published side runs on topics of its own, fresh for each round, deleted at the end. On
the shared frames topic each round's new camera first searched up to 2,000 earlier records
(about 150 MB of JPEG) for a frame of its own, so the figure depended on how often the bench
had run before; and the dev stack's workers took the bench's frames for camera frames.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import av

from decoders.pipeline import EncodeAhead
from decoders.runner import run_cameras
from decoders.settings import CameraSettings
from sightline.config import SightlineConfig
from streams.kafka import make_admin
from streams.topics import ensure_topics

_OWN_TOPICS = ("frames", "camera_events", "camera_health")  # the topics the decoder writes


@contextmanager
def own_topics(config: SightlineConfig, count: int) -> Iterator[list[SightlineConfig]]:
    """`count` copies of `config`, each with fresh frames, camera-events and camera-health topics.

    All are created before anything is timed and deleted at the end, so the broker's work for
    them lands in neither measurement.
    """
    copies, names = [], []
    for i in range(count):
        tag = f"sightline-bench-{time.time_ns()}-{i}"
        renamed = {
            name: getattr(config.topics, name).model_copy(update={"name": f"{tag}.{name}"})
            for name in _OWN_TOPICS
        }
        copies.append(config.model_copy(update={"topics": config.topics.model_copy(update=renamed)}))
        names += [t.name for t in renamed.values()]
    for copy in copies:
        ensure_topics(copy)
    try:
        yield copies
    finally:
        admin = make_admin(config.kafka)
        for future in admin.delete_topics(names, operation_timeout=30).values():
            future.result()


def bare_rate(path: Path, quality: int) -> tuple[int, float]:
    """Decode + encode every frame, nothing else: the ceiling for the decoder.

    Through the decoder's own EncodeAhead, so the same threads do the same work as when it
    publishes; only the Kafka side is missing. (The earlier loop on the main thread understated
    the limit: glibc trims and regrows the main heap around every frame, about 270,000 minor
    page faults per pass of vtest.avi against about 1,000 on a thread.)
    """
    started = time.perf_counter()
    frames = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        with EncodeAhead(container.decode(stream), quality) as encoded:
            for _ in encoded:
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
    with own_topics(config, rounds) as round_configs:  # each round starts like the first
        for round_config in round_configs:
            frames, fps = bare_rate(path, quality)
            limits.append(fps)
            sent, fps = published_rate(round_config, path, quality, "bench")
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
