"""Live-view frames: find the frame a detections record refers to and draw it (sightline.drawing)."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import redis
import simplejpeg
from confluent_kafka import Consumer, TopicPartition

from schemas.detections import DetectionsRecord
from sightline.api.errors import DependencyDown
from sightline.config import SightlineConfig
from sightline.drawing import decode_frame, draw
from streams.claimcheck import ClaimCheckStore
from streams.health import Health
from streams.kafka import consumer_config


class FrameFetcher:
    """Reads one frame record back by (topic, partition, offset), or from the Redis claim check.

    While Kafka or Redis is down it raises `DependencyDown` (a 503) instead of hanging or failing.
    """

    def __init__(self, config: SightlineConfig, health: Health) -> None:
        self.config, self.health = config, health
        self._lock = threading.Lock()
        self._consumer: Consumer | None = None
        self._claims: ClaimCheckStore | None = None

    def fetch(self, record: DetectionsRecord, timeout: float = 3.0) -> bytes | None:
        ref = record.frame
        if ref.claim_check:
            if self._claims is None:
                self._claims = ClaimCheckStore(self.config.redis.url, self.config.frames.claim_check_ttl_s)
            try:
                return self._claims.get(ref.claim_check)
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                self.health.degraded("redis", f"{type(exc).__name__}: {exc}")
                raise DependencyDown("redis", str(exc)) from None
        if not self.health.is_up("kafka"):
            raise DependencyDown("kafka", "the broker does not answer")
        with self._lock:
            if self._consumer is None:
                conf = consumer_config(self.config.kafka, f"sightline-api-frames-{uuid.uuid4().hex[:12]}")
                self._consumer = Consumer(conf)
            self._consumer.assign([TopicPartition(ref.topic, ref.partition, ref.offset)])
            for msg in self._consumer.consume(1, timeout):
                if msg.error() is None and msg.offset() == ref.offset:
                    return msg.value()
        if not self.health.is_up("kafka"):  # the broker went away while we waited for the record
            raise DependencyDown("kafka", "the broker does not answer")
        return None

    def close(self) -> None:
        with self._lock:
            if self._consumer is not None:
                self._consumer.close()
                self._consumer = None
        if self._claims is not None:
            self._claims.close()


def render_jpeg(
    payload: bytes, record: DetectionsRecord, shapes: list[dict[str, Any]], quality: int
) -> bytes:
    return simplejpeg.encode_jpeg(draw(decode_frame(payload), record, shapes), quality, colorspace="BGR")
