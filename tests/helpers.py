"""Test helpers: reading topics back from the real broker, and batches for the staged pipeline."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import Future

import numpy as np
from confluent_kafka import Message

from inference.batching import Batch, FrameJob
from schemas.frame import FrameMeta
from sightline.config import SightlineConfig
from streams.kafka import make_consumer
from streams.topic_reader import TopicMissing, read_spans, spans


def read_topic(
    config: SightlineConfig,
    topic: str,
    *,
    expected: int | None = None,
    max_wait: float = 60.0,
    read_committed: bool = True,
) -> list[Message]:
    """Records of `topic` from its start, partition by partition.

    Without `expected`: what the topic holds now (up to the end offsets seen at the start).
    With it: reads on as records arrive until that many arrived (then lingers a second to catch
    extras), or `max_wait` passed.
    """
    consumer = make_consumer(config.kafka, f"test-reader-{uuid.uuid4().hex}", read_committed=read_committed)
    messages: list[Message] = []
    done: dict[int, int] = {}  # per partition: where the next read starts
    started = time.monotonic()
    reached_at: float | None = None
    try:
        while True:
            try:
                todo = spans(consumer, topic, start=done)
            except TopicMissing:
                todo = []
            messages += read_spans(consumer, topic, todo, timeout_s=max_wait)
            done.update((s.partition, s.end) for s in todo)
            if expected is None:
                break
            if len(messages) >= expected:
                reached_at = reached_at or time.monotonic()
                if time.monotonic() - reached_at > 1.0:
                    break
            elif time.monotonic() - started >= max_wait:
                break
            time.sleep(0.2)
    finally:
        consumer.close()
    return messages


def decoded(value: np.ndarray | BaseException) -> Future[np.ndarray]:
    """A frame's decode job, already done (or failed with ``value``)."""
    future: Future[np.ndarray] = Future()
    if isinstance(value, BaseException):
        future.set_exception(value)
    else:
        future.set_result(value)
    return future


def frame_batch(images: list[np.ndarray | BaseException], first_offset: int) -> Batch:
    """A closed batch of camera "cam" frames at consecutive offsets of partition 0, as the worker
    hands it to ``StagedPipeline``; an exception stands for a frame whose decode failed."""
    batch = Batch(opened=time.monotonic())
    for i, image in enumerate(images):
        offset = first_offset + i
        msg = Message(topic="frames", partition=0, offset=offset, key=b"cam")
        h, w = (480, 640) if isinstance(image, BaseException) else image.shape[:2]
        meta = FrameMeta(camera_id="cam", seq=offset, capture_ns=1, width=w, height=h)
        batch.track(msg)
        batch.jobs.append(FrameJob(msg, meta, time.monotonic(), decoded(image)))
    return batch
