"""Puts encoded frames on Kafka: claim check for large frames, backpressure or drop-oldest.

A file source waits when the producer queue is full or Redis is away (nothing is lost, the
file just takes longer); a live source cannot wait without falling behind real time, so it
keeps a short queue of its own and drops the oldest frame in it, counting the drop.

Kafka outages: the producer never gives up on a record it accepted (no delivery timeout), so a
broker outage of any length only fills its queue, and the two policies above take over.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import redis
from confluent_kafka import KafkaError, Message, Producer
from prometheus_client import Counter, Histogram

from decoders import metrics
from schemas.camera_event import CameraEvent
from schemas.camera_health import CameraHealth
from schemas.frame import FrameMeta
from streams.claimcheck import ClaimCheckStore
from streams.health import Health
from streams.kafka import at_least_once_producer_config
from streams.retry import call_with_retry
from streams.settings import StreamsConfig

log = logging.getLogger(__name__)

# Errors that mean "Redis is away, try again" (BusyLoadingError, a restarting Redis, is one).
REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError)


@dataclass(slots=True)
class _Pending:
    meta: FrameMeta
    payload: bytes  # empty once the frame is parked in Redis (meta.claim_check set)


def _on_kafka_error(health: Health, err: KafkaError) -> None:
    """librdkafka's client-level errors: it reconnects by itself, we only report the state."""
    if err.fatal():
        log.critical("Kafka producer failed for good: %s", err.str())
        health.degraded("kafka", f"fatal: {err.str()}")
    elif err.code() == KafkaError._ALL_BROKERS_DOWN:
        health.degraded("kafka", err.str())
    else:
        log.debug("Kafka client error (retried by librdkafka): %s", err.str())


class FramePublisher:
    """One per process, shared by the camera threads (the Producer is thread-safe)."""

    def __init__(
        self,
        config: StreamsConfig,
        producer: Producer,
        claims: ClaimCheckStore | None,
        *,
        health: Health | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.config = config
        self.producer = producer
        self.claims = claims
        self.health = health or Health("decoder")
        self.stop = stop or threading.Event()
        self.topic = config.topics.frames.name
        self.failed = 0
        self._bound: dict[str, tuple[Counter, Histogram]] = {}

    @classmethod
    def create(
        cls,
        config: StreamsConfig,
        client_id: str = "sightline-decoder",
        *,
        health: Health | None = None,
        stop: threading.Event | None = None,
        producer_options: Mapping[str, Any] | None = None,
    ) -> FramePublisher:
        health = health or Health("decoder")
        # JPEG does not compress further; spending CPU on it only slows the decoder down.
        options = {"compression": "none", "linger_ms": 5, **(producer_options or {})}
        settings = at_least_once_producer_config(config.kafka, client_id, **options)
        settings["error_cb"] = partial(_on_kafka_error, health)
        claims = ClaimCheckStore(config.redis.url, config.frames.claim_check_ttl_s)
        return cls(config, Producer(settings), claims, health=health, stop=stop)

    def _on_delivery(self, camera: str, started: float, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self.failed += 1
            metrics.FRAMES_DROPPED.labels(camera, "delivery_failed").inc()
            log.error("camera %s: frame delivery failed: %s", camera, err)
            return
        if not self.health.is_up("kafka"):
            self.health.ok("kafka")
        published, seconds = self._delivery_metrics(camera)
        published.inc()
        seconds.observe(time.monotonic() - started)

    def _delivery_metrics(self, camera: str) -> tuple[Counter, Histogram]:
        """Labelled children bound once per camera: a labels() lookup per frame is measurable."""
        bound = self._bound.get(camera)
        if bound is None:
            bound = self._bound[camera] = (
                metrics.FRAMES_PUBLISHED.labels(camera),
                metrics.PUBLISH_SECONDS.labels(camera),
            )
        return bound

    def _claim_check(self, item: _Pending, wait_for_redis: bool) -> None:
        """Park the payload in Redis; the record then carries only the key."""
        if self.claims is None:
            raise RuntimeError("frame exceeds inline_max_bytes and no claim-check store is configured")
        meta = item.meta
        key = ClaimCheckStore.key_for(meta.camera_id, meta.seq, meta.capture_ns)
        put = partial(self.claims.put, key, item.payload)
        if wait_for_redis:
            call_with_retry(
                put, health=self.health, dependency="redis", retry_on=REDIS_ERRORS, stop=self.stop
            )
        else:
            try:
                put()
            except REDIS_ERRORS as exc:
                self.health.degraded("redis", f"{type(exc).__name__}: {exc}")
                raise
            self.health.ok("redis")
        item.meta, item.payload = replace(meta, claim_check=key), b""
        metrics.CLAIM_CHECKS.labels(meta.camera_id).inc()

    def try_produce(self, item: _Pending, *, wait_for_redis: bool = True) -> None:
        """Queue one record; raises BufferError when the producer queue is full.

        A frame over `inline_max_bytes` goes to Redis first (once, even if produce is retried).
        With `wait_for_redis` an unreachable Redis is retried with backoff until it is back or
        we stop (then its error is raised); without it, the error is raised at once.
        """
        if item.meta.claim_check is None and len(item.payload) > self.config.frames.inline_max_bytes:
            self._claim_check(item, wait_for_redis)
        meta = item.meta
        self.producer.produce(
            self.topic,
            key=meta.camera_id.encode(),
            value=item.payload,
            headers=meta.headers(),
            on_delivery=partial(self._on_delivery, meta.camera_id, time.monotonic()),
        )

    def publish_blocking(self, meta: FrameMeta, payload: bytes) -> bool:
        """Backpressure: wait for room in the producer queue, and for Redis; False if stopped first."""
        item = _Pending(meta, payload)
        while True:
            try:
                self.try_produce(item)
                break
            except BufferError:
                if self.stop.is_set():
                    return False
                self.producer.poll(0.05)
            except REDIS_ERRORS:
                if self.stop.is_set():  # call_with_retry gave up because we are stopping
                    return False
                raise
        self.producer.poll(0)
        return True

    def publish_event(self, event: CameraEvent) -> None:
        """Best effort: with the producer queue full (Kafka away for long), the event is dropped."""
        try:
            self.producer.produce(
                self.config.topics.camera_events.name, key=event.camera_id.encode(), value=event.encode()
            )
        except BufferError:
            log.warning("camera %s: producer queue full, %r event not sent", event.camera_id, event.event)
        self.producer.poll(0)

    def publish_health(self, record: CameraHealth) -> None:
        """Best effort, like events: a record lost to a full queue is followed by the next one."""
        try:
            self.producer.produce(
                self.config.topics.camera_health.name, key=record.camera_id.encode(), value=record.encode()
            )
        except BufferError:
            log.debug("camera %s: producer queue full, health record not sent", record.camera_id)

    def flush(self, timeout: float = 30.0) -> int:
        return self.producer.flush(timeout)

    def close(self) -> None:
        """Wait until Kafka acknowledged everything (however long it is away); once stopping, 30 s."""
        remaining = self.flush(1.0)
        while remaining and not self.stop.is_set():
            remaining = self.flush(1.0)
        if remaining:
            remaining = self.flush(30.0)
        if remaining:
            log.error("%d records were not delivered before shutdown", remaining)
        if self.claims is not None:
            self.claims.close()


class LiveQueue:
    """Drop-oldest buffer in front of the producer for a live camera.

    It never waits: while the producer queue is full or Redis is away, frames stay here and
    the oldest goes once `capacity` is reached (counted as dropped, `queue_full`). Redis is
    tried again every `redis_retry_s` meanwhile, not on every frame.
    """

    def __init__(
        self, publisher: FramePublisher, camera: str, capacity: int = 32, redis_retry_s: float = 1.0
    ) -> None:
        self.publisher = publisher
        self.camera = camera
        self.pending: deque[_Pending] = deque()
        self.capacity = capacity
        self.redis_retry_s = redis_retry_s
        self._redis_retry_at = 0.0

    def publish(self, meta: FrameMeta, payload: bytes) -> None:
        self.pending.append(_Pending(meta, payload))
        self.drain()
        if len(self.pending) > self.capacity:
            self.pending.popleft()
            metrics.FRAMES_DROPPED.labels(self.camera, "queue_full").inc()

    def drain(self) -> None:
        while self.pending and time.monotonic() >= self._redis_retry_at:
            try:
                self.publisher.try_produce(self.pending[0], wait_for_redis=False)
            except BufferError:
                break
            except REDIS_ERRORS:
                self._redis_retry_at = time.monotonic() + self.redis_retry_s
                break
            self.pending.popleft()
        self.publisher.producer.poll(0)
