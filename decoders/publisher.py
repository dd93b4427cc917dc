"""Puts encoded frames on Kafka: claim check for large frames, backpressure or drop-oldest.

A file source waits when the producer queue is full (nothing is lost, the file just takes
longer); a live source cannot wait without falling behind real time, so it keeps a short
queue of its own and drops the oldest frame in it, counting the drop.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, replace
from functools import partial

from confluent_kafka import KafkaError, Message, Producer

from decoders import metrics
from schemas.camera_event import CameraEvent
from schemas.frame import FrameMeta
from sightline.config import SightlineConfig
from streams.claimcheck import ClaimCheckStore
from streams.kafka import make_producer

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Pending:
    meta: FrameMeta
    payload: bytes


class FramePublisher:
    """One per camera thread; all share a single thread-safe Producer."""

    def __init__(self, config: SightlineConfig, producer: Producer, claims: ClaimCheckStore | None) -> None:
        self.config = config
        self.producer = producer
        self.claims = claims
        self.topic = config.topics.frames.name
        self.failed = 0

    @classmethod
    def create(cls, config: SightlineConfig, client_id: str = "sightline-decoder") -> FramePublisher:
        # JPEG does not compress further; spending CPU on it only slows the decoder down.
        producer = make_producer(config.kafka, client_id, compression="none", linger_ms=5)
        claims = ClaimCheckStore(config.redis.url, config.frames.claim_check_ttl_s)
        return cls(config, producer, claims)

    def _on_delivery(self, camera: str, started: float, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self.failed += 1
            metrics.FRAMES_DROPPED.labels(camera, "delivery_failed").inc()
            log.error("camera %s: frame delivery failed: %s", camera, err)
            return
        metrics.FRAMES_PUBLISHED.labels(camera).inc()
        metrics.PUBLISH_SECONDS.labels(camera).observe(time.monotonic() - started)

    def try_produce(self, item: _Pending) -> None:
        """Queue one record; raises BufferError when the producer queue is full."""
        meta, value = item.meta, item.payload
        if len(value) > self.config.frames.inline_max_bytes:
            if self.claims is None:
                raise RuntimeError("frame exceeds inline_max_bytes and no claim-check store is configured")
            key = self.claims.put(ClaimCheckStore.key_for(meta.camera_id, meta.seq, meta.capture_ns), value)
            meta = replace(meta, claim_check=key)
            value = b""
            metrics.CLAIM_CHECKS.labels(meta.camera_id).inc()
        self.producer.produce(
            self.topic,
            key=meta.camera_id.encode(),
            value=value,
            headers=meta.headers(),
            on_delivery=partial(self._on_delivery, meta.camera_id, time.monotonic()),
        )

    def publish_blocking(self, meta: FrameMeta, payload: bytes) -> None:
        """Backpressure: wait for room in the producer queue."""
        item = _Pending(meta, payload)
        while True:
            try:
                self.try_produce(item)
                break
            except BufferError:
                self.producer.poll(0.05)
        self.producer.poll(0)

    def publish_event(self, event: CameraEvent) -> None:
        self.producer.produce(
            self.config.topics.camera_events.name, key=event.camera_id.encode(), value=event.encode()
        )
        self.producer.poll(0)

    def flush(self, timeout: float = 30.0) -> int:
        return self.producer.flush(timeout)

    def close(self) -> None:
        remaining = self.flush()
        if remaining:
            log.error("%d records were not delivered before shutdown", remaining)
        if self.claims is not None:
            self.claims.close()


class LiveQueue:
    """Drop-oldest buffer in front of the producer for a live camera."""

    def __init__(self, publisher: FramePublisher, camera: str, capacity: int = 32) -> None:
        self.publisher = publisher
        self.camera = camera
        self.pending: deque[_Pending] = deque()
        self.capacity = capacity

    def publish(self, meta: FrameMeta, payload: bytes) -> None:
        if len(self.pending) >= self.capacity:
            self.pending.popleft()
            metrics.FRAMES_DROPPED.labels(self.camera, "queue_full").inc()
        self.pending.append(_Pending(meta, payload))
        self.drain()

    def drain(self) -> None:
        while self.pending:
            try:
                self.publisher.try_produce(self.pending[0])
            except BufferError:
                break
            self.pending.popleft()
        self.publisher.producer.poll(0)
