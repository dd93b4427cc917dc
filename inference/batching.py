"""Micro-batches of frame records and the bookkeeping that makes commits safe.

A batch closes at `max_batch` frames or `max_wait_ms` after its first frame, whichever comes
first (Triton's dynamic batching policy), or when the model would otherwise sit idle
(`close_when_idle`, decided by the worker loop). Each batch remembers the offsets it covers, so the
worker commits them only once every record it produced has been acknowledged.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import supervision as sv
from confluent_kafka import KafkaError, Message, TopicPartition

from inference.records import BatchTiming
from schemas.detections import Skipped
from schemas.frame import FrameMeta

if TYPE_CHECKING:
    from inference.detector import Detector


@dataclass(slots=True)
class FrameJob:
    msg: Message
    meta: FrameMeta
    fetched: float  # monotonic seconds
    image: Future[np.ndarray] | None  # dropped once the model has run


@dataclass(slots=True)
class Rejected:
    msg: Message
    reason: str


@dataclass(slots=True)
class SkippedFrame:
    """A realtime camera's frame too old to run (inference/freshness.py): published as a skipped record."""

    msg: Message
    meta: FrameMeta
    skipped: Skipped


@dataclass
class Batch:
    opened: float
    jobs: list[FrameJob] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    skipped: list[SkippedFrame] = field(default_factory=list)
    next_offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    first_offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    # Filled in by the pipeline's stages, in order (see inference/pipeline.py).
    epoch: int = 0  # batches of an older epoch were rewound (exactly-once abort): dropped on output
    detector: Detector | None = None  # one model for the whole batch, even across a hot swap
    good: list[FrameJob] = field(default_factory=list)  # decoded frames, in record order
    results: list[sv.Detections] = field(default_factory=list)  # one per `good` frame
    timing: BatchTiming | None = None
    started: float = 0.0  # monotonic time the batch's preparation began
    finished: float = 0.0  # monotonic time it came out of the pipeline's last stage
    # Delivery bookkeeping (at-least-once): the batch is done when every produced record is acked.
    _pending: int = 0
    _sealed: bool = False
    error: KafkaError | str | None = None
    done: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def track(self, msg: Message) -> None:
        key = (msg.topic(), msg.partition())
        self.next_offsets[key] = max(self.next_offsets.get(key, 0), msg.offset() + 1)
        self.first_offsets[key] = min(self.first_offsets.get(key, msg.offset()), msg.offset())

    def offsets(self) -> list[TopicPartition]:
        return [TopicPartition(t, p, o) for (t, p), o in sorted(self.next_offsets.items())]

    def rewind_offsets(self, into: dict[tuple[str, int], int]) -> None:
        """Merge this batch's first offsets into ``into`` (earliest per partition wins)."""
        for key, offset in self.first_offsets.items():
            into[key] = min(into.get(key, offset), offset)

    def is_empty(self) -> bool:
        return not self.jobs and not self.rejected and not self.skipped

    def age_ms(self, now: float | None = None) -> float:
        return ((now or time.monotonic()) - self.opened) * 1e3

    # -- delivery tracking -------------------------------------------------------------
    def expect_delivery(self) -> None:
        with self._lock:
            self._pending += 1

    def delivered(self, err: KafkaError | None) -> None:
        with self._lock:
            self._pending -= 1
            if err is not None and self.error is None:
                self.error = err
            if self._sealed and self._pending == 0:
                self.done.set()

    def seal(self) -> None:
        """No more records will be produced for this batch."""
        with self._lock:
            self._sealed = True
            if self._pending == 0:
                self.done.set()

    def fail(self, reason: str) -> None:
        with self._lock:
            self.error = self.error or reason
            self._sealed = True
        self.done.set()


class Holds:
    """Per partition, the offset no commit may pass: the first frame of a batch dropped uncommitted.

    A batch is dropped without its frames being detected or dead-lettered when it fails while the
    worker stops (Redis down, a transaction that did not commit) or when its delivery failed. Its
    frames are safe only while the partition's committed offset stays before them: a later batch of
    that partition that finishes and commits would move the offset past them for good. Such a
    batch is dropped too (it would be read again anyway), and holds its own other partitions.
    """

    def __init__(self) -> None:
        self._limits: dict[tuple[str, int], int] = {}

    def hold(self, batch: Batch) -> None:
        """``batch`` is dropped: none of its partitions may be committed past its first frame."""
        for key, offset in batch.first_offsets.items():
            self._limits[key] = min(self._limits.get(key, offset), offset)

    def blocks(self, batch: Batch) -> bool:
        """Committing ``batch`` would pass a held frame."""
        return any(
            offset > self._limits[key] for key, offset in batch.next_offsets.items() if key in self._limits
        )

    def release(self, partitions: list[TopicPartition] | None = None) -> None:
        """Partitions given back or lost (all with None): their next owner starts at the commit."""
        if partitions is None:
            self._limits.clear()
            return
        for tp in partitions:
            self._limits.pop((tp.topic, tp.partition), None)
