"""The worker's parts that the outbox and both delivery strategies work with, built once by the
worker and handed to each of them whole (instead of a long constructor list apiece)."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka import Consumer

from inference.batching import Batch
from inference.tracker_state import TrackerStateStore
from inference.tracking import CameraTrackers
from streams.claimcheck import ClaimCheckStore
from streams.health import Health


@dataclass
class WorkerStats:
    frames: int = 0
    records: int = 0
    dead_letters: int = 0
    skipped: int = 0  # records of frames a realtime camera's policy skipped (also in `records`)
    batches: int = 0
    first_fetch: float | None = None  # monotonic time of the first frame, for throughput figures
    last_ack: float | None = None  # monotonic time of the last acknowledged detections record
    frame_ages_ms: deque[float] = field(default_factory=lambda: deque(maxlen=200_000))
    # Per produced frame, where its age went (ms): capture -> fetched (decoder, Kafka, poll),
    # fetched -> its batch entered the pipeline (batching), -> came out (prepare, engine, finish),
    # -> detections produced (tracking, record). The ack follows. Read by the benchmark's live
    # phase only, so it keeps far fewer than the ages: 200k tuples would hold ~30 MB in every worker.
    frame_stages_ms: deque[tuple[float, float, float, float]] = field(
        default_factory=lambda: deque(maxlen=20_000)
    )


@dataclass(frozen=True, slots=True)
class WorkerParts:
    consumer: Consumer
    trackers: CameraTrackers
    tracker_state: TrackerStateStore  # tracker snapshots, published with each batch
    claims: ClaimCheckStore  # a dead-lettered claim check's image is kept past its TTL
    health: Health
    stop: threading.Event
    stats: WorkerStats
    in_flight: deque[Batch]  # handed to the pipeline, not yet committed (the worker's own deque)
    on_ack: Callable[[str, int], None]  # (camera, capture_ns) of an acknowledged detections record
