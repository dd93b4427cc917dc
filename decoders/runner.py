"""Runs several cameras in one process: a thread each, one shared producer, clean shutdown."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

from decoders.camera import CameraRunner, CameraStats
from decoders.publisher import FramePublisher
from decoders.reference import ReferenceStore
from decoders.rules_follow import RulesFollower
from decoders.settings import CameraSettings
from streams.health import Health
from streams.http_health import serve_health
from streams.settings import StreamsConfig
from streams.signals import stop_on_signals

log = logging.getLogger(__name__)


def run_cameras(
    config: StreamsConfig,
    cameras: list[CameraSettings],
    stop: threading.Event | None = None,
    *,
    max_frames: int | None = None,
    realtime: bool = False,
    rewind: bool = False,
    metrics_port: int | None = None,
    producer_options: Mapping[str, Any] | None = None,
    health: Health | None = None,
) -> dict[str, CameraStats]:
    """Decode every camera until its source ends (files) or `stop` is set; returns stats.

    Each camera resumes after its last frame on the topic (seq, and a file's position unless
    `rewind`). Returns once Kafka acknowledged every frame, however long it was away, unless
    `stop` is set first. /metrics, /readyz and /healthz are served on `metrics_port` (default:
    metrics.decoder_port; 0: not served, e.g. because the caller serves `health` already).
    """
    stop = stop or threading.Event()
    health = health or Health("decoder")
    port = config.metrics.decoder_port if metrics_port is None else metrics_port
    server = None
    if port:  # ListenError: one line naming the setting
        server = serve_health(
            health, config.metrics.host, port, "metrics.decoder_port",
            liveness_timeout_s=config.metrics.liveness_timeout_s, name="decoder-http",
        )  # fmt: skip
    try:
        return _run(config, cameras, stop, health, max_frames, realtime, rewind, producer_options)
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()


def _run(
    config: StreamsConfig,
    cameras: list[CameraSettings],
    stop: threading.Event,
    health: Health,
    max_frames: int | None,
    realtime: bool,
    rewind: bool,
    producer_options: Mapping[str, Any] | None,
) -> dict[str, CameraStats]:
    publisher = FramePublisher.create(config, health=health, stop=stop, producer_options=producer_options)
    # Reference frames of the camera health statistics, shared by the cameras (decoders/reference.py).
    references = ReferenceStore.connect(config.redis.url) if any(c.health.enabled for c in cameras) else None
    runners = [
        CameraRunner(
            cam,
            publisher,
            stop,
            max_frames=max_frames,
            realtime=realtime,
            rewind=rewind,
            references=references,
        )  # fmt: skip
        for cam in cameras
    ]
    threads = [threading.Thread(target=r.run, name=f"camera-{r.camera.id}", daemon=True) for r in runners]
    follow_done = threading.Event()
    follower = _follow_rules(config, cameras, references, follow_done)
    # This thread serves the producer's delivery reports (and so notices Kafka coming back).
    with stop_on_signals(stop), health.loop("decoder-producer") as heartbeat:
        for thread in threads:
            thread.start()
        while any(t.is_alive() for t in threads):
            heartbeat.beat()
            publisher.producer.poll(0.1)
        for thread in threads:
            thread.join()
        with heartbeat.waiting_on("kafka"):
            publisher.close()  # inside: a signal while it waits for Kafka cuts the wait short
    follow_done.set()
    if follower is not None:
        follower.join(5.0)
    if references is not None:
        references.close()
    if publisher.failed:
        log.error("%d frame records failed delivery", publisher.failed)
    return {r.camera.id: r.stats for r in runners}


def _follow_rules(
    config: StreamsConfig,
    cameras: list[CameraSettings],
    references: ReferenceStore | None,
    done: threading.Event,
) -> threading.Thread | None:
    """A thread retaking the references of cameras whose rules are saved (decoders/rules_follow.py)."""
    following = [c for c in cameras if c.health.enabled and c.health.reference is None]
    if references is None or not following:
        return None
    follower = RulesFollower(config, [c.id for c in following], references)
    every_s = min(c.health.reference_check_s for c in following)
    thread = threading.Thread(target=follower.run, args=(done, every_s), name="decoder-rules", daemon=True)
    thread.start()
    return thread
