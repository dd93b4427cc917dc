"""Explicit Kafka client configuration, in the style of confluent-kafka's examples.

Every client is built here so idempotence, compression and timeouts are chosen once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, Producer

from streams.settings import KafkaSettings

log = logging.getLogger(__name__)


def _base(settings: KafkaSettings, client_id: str | None = None) -> dict[str, Any]:
    return {
        "bootstrap.servers": settings.bootstrap_servers,
        "client.id": client_id or settings.client_id,
        **settings.extra,
    }


def producer_config(
    settings: KafkaSettings,
    client_id: str | None = None,
    *,
    compression: str = "lz4",
    linger_ms: int = 5,
    queue_max_messages: int = 100_000,
    queue_max_kbytes: int = 262_144,
    transactional_id: str | None = None,
) -> dict[str, Any]:
    """Idempotent producer; lz4 by default because JPEG barely compresses and lz4 is cheapest.

    Headers and JSON values still shrink with lz4, and it costs almost nothing for JPEG.
    """
    config = {
        **_base(settings, client_id),
        "enable.idempotence": True,
        "acks": "all",
        "compression.type": compression,
        "linger.ms": linger_ms,
        "message.max.bytes": settings.message_max_bytes,
        "queue.buffering.max.messages": queue_max_messages,
        "queue.buffering.max.kbytes": queue_max_kbytes,
        "delivery.timeout.ms": 120_000,
    }
    if transactional_id:
        config["transactional.id"] = transactional_id
    return config


def consumer_config(
    settings: KafkaSettings,
    group_id: str,
    client_id: str | None = None,
    *,
    read_committed: bool = True,
    auto_offset_reset: str = "earliest",
) -> dict[str, Any]:
    """Manual commits only: Sightline commits offsets after the work is acknowledged."""
    return {
        **_base(settings, client_id),
        "group.id": group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": auto_offset_reset,
        "isolation.level": "read_committed" if read_committed else "read_uncommitted",
        "fetch.max.bytes": max(settings.message_max_bytes * 4, 8 << 20),
        "max.partition.fetch.bytes": max(settings.message_max_bytes, 1 << 20),
        "session.timeout.ms": 10_000,
        "heartbeat.interval.ms": 2_000,
        "max.poll.interval.ms": 120_000,
    }


def make_producer(settings: KafkaSettings, client_id: str | None = None, **options: Any) -> Producer:
    return Producer(producer_config(settings, client_id, **options))


def make_consumer(
    settings: KafkaSettings, group_id: str, client_id: str | None = None, **options: Any
) -> Consumer:
    return Consumer(consumer_config(settings, group_id, client_id, **options))


DeliveryCallback = Callable[[KafkaError | None, Message], None]


class DeliveryTracker:
    """Counts delivery reports so callers can check that everything they sent was acked."""

    def __init__(self, on_error: Callable[[KafkaError, Message], None] | None = None) -> None:
        self.delivered = 0
        self.failed = 0
        self.last_error: KafkaError | None = None
        self._on_error = on_error

    def __call__(self, err: KafkaError | None, msg: Message) -> None:
        if err is None:
            self.delivered += 1
            return
        self.failed += 1
        self.last_error = err
        log.error("delivery to %s failed: %s", msg.topic(), err)
        if self._on_error is not None:
            self._on_error(err, msg)


# Consumer errors after which retrying cannot help: the worker must fail with a clear error.
_FATAL_CODES = frozenset(
    {
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._UNKNOWN_TOPIC,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.GROUP_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
        KafkaError.SASL_AUTHENTICATION_FAILED,
        KafkaError._AUTHENTICATION,
    }
)
_MISSING_TOPIC = frozenset({KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC})


def is_fatal_error(err: KafkaError) -> bool:
    """True for client errors that no amount of retrying fixes (fatal, unknown topic, authorization)."""
    return err.fatal() or err.code() in _FATAL_CODES


def is_missing_topic(err: KafkaError) -> bool:
    """A missing topic can be a topic being created: callers give it a short grace period."""
    return err.code() in _MISSING_TOPIC
