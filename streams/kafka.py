"""Every Kafka client's configuration, one builder per role; each setting is named and explained once.

Callers ask for the role they play (a plain reader, the inference worker's consumer, a producer
that never drops a record, a transactional producer) and add only callbacks (``error_cb``,
``on_commit``) or a one-off read tweak of their own.
"""

from __future__ import annotations

from typing import Any

from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient

from streams.settings import KafkaSettings

# -- consumers ------------------------------------------------------------------------------
# A member that stops heartbeating loses its partitions after this long: short, so a killed
# worker's frames move to a live one within seconds (benchmarks and tests count on 10 s).
SESSION_TIMEOUT_MS = 10_000
# A fifth of the session timeout: several beats may be lost before the member is evicted.
HEARTBEAT_INTERVAL_MS = 2_000
# How long a member may go between polls before it is taken out of the group. Readers poll
# between short pieces of work: two minutes is plenty and still catches a hung loop.
MAX_POLL_INTERVAL_MS = 120_000
# The inference worker's loop also blocks between polls on transactions while Kafka is away and
# on the drain at a revoke (up to 30 s): five minutes keeps a slow but live worker in its group.
WORKER_MAX_POLL_INTERVAL_MS = 300_000
# A loop that waits out a dependency's outage in place (Redis down for minutes) without polling
# Kafka must stay in its group meanwhile: ten minutes.
BLOCKING_MAX_POLL_INTERVAL_MS = 600_000

# -- producers ------------------------------------------------------------------------------
# An idempotent producer gives up on a record after two minutes of failed sends (librdkafka's
# default is five): the caller then sees a delivery error instead of a silent stall.
DELIVERY_TIMEOUT_MS = 120_000
# librdkafka: 0 = never time out a record once accepted. At-least-once producers ride out any
# broker outage and deliver everything afterwards; a timeout would drop frames or detections.
NEVER_TIME_OUT_MS = 0
# An open transaction blocks read_committed readers of its partitions until it commits or aborts:
# a worker that died mid-transaction stalls them at most this long (a restarted twin with the same
# transactional.id aborts it at once).
TRANSACTION_TIMEOUT_MS = 10_000
# librdkafka refuses a delivery timeout longer than the transaction timeout.
TRANSACTIONAL_DELIVERY_TIMEOUT_MS = TRANSACTION_TIMEOUT_MS


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
) -> dict[str, Any]:
    """Idempotent producer; lz4 by default because JPEG barely compresses and lz4 is cheapest.

    Headers and JSON values still shrink with lz4, and it costs almost nothing for JPEG.
    """
    return {
        **_base(settings, client_id),
        "enable.idempotence": True,
        "acks": "all",
        "compression.type": compression,
        "linger.ms": linger_ms,
        "message.max.bytes": settings.message_max_bytes,
        "queue.buffering.max.messages": queue_max_messages,
        "queue.buffering.max.kbytes": queue_max_kbytes,
        "delivery.timeout.ms": DELIVERY_TIMEOUT_MS,
    }


def at_least_once_producer_config(
    settings: KafkaSettings, client_id: str | None = None, **options: Any
) -> dict[str, Any]:
    """Idempotent producer that never gives up on a record it accepted (frames, at-least-once
    detections): an outage stalls it, back-pressure reaches the caller, nothing is dropped."""
    return {**producer_config(settings, client_id, **options), "delivery.timeout.ms": NEVER_TIME_OUT_MS}


def transactional_producer_config(
    settings: KafkaSettings, client_id: str | None, transactional_id: str, **options: Any
) -> dict[str, Any]:
    """Idempotent producer for Kafka transactions (exactly-once): ``transactional_id`` must be
    unique per live process, and stable across restarts to fence a dead twin."""
    return {
        **producer_config(settings, client_id, **options),
        "transactional.id": transactional_id,
        "transaction.timeout.ms": TRANSACTION_TIMEOUT_MS,
        "delivery.timeout.ms": TRANSACTIONAL_DELIVERY_TIMEOUT_MS,
    }


def consumer_config(
    settings: KafkaSettings,
    group_id: str,
    client_id: str | None = None,
    *,
    read_committed: bool = True,
    auto_offset_reset: str = "earliest",
    max_poll_interval_ms: int = MAX_POLL_INTERVAL_MS,
) -> dict[str, Any]:
    """A reader. Manual commits only: Sightline commits offsets after the work is acknowledged.

    read_committed (the default) never shows records of open or aborted transactions;
    ``read_committed=False`` is for readers that want the latest record even if uncommitted.
    """
    return {
        **_base(settings, client_id),
        "group.id": group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": auto_offset_reset,
        "isolation.level": "read_committed" if read_committed else "read_uncommitted",
        "fetch.max.bytes": max(settings.message_max_bytes * 4, 8 << 20),
        "max.partition.fetch.bytes": max(settings.message_max_bytes, 1 << 20),
        "session.timeout.ms": SESSION_TIMEOUT_MS,
        "heartbeat.interval.ms": HEARTBEAT_INTERVAL_MS,
        "max.poll.interval.ms": max_poll_interval_ms,
    }


def worker_consumer_config(settings: KafkaSettings, group_id: str, client_id: str) -> dict[str, Any]:
    """The inference worker's frames consumer: read_committed, and time between polls for a
    pipeline drain or a model swap (``WORKER_MAX_POLL_INTERVAL_MS``)."""
    return consumer_config(
        settings, group_id, client_id, read_committed=True, max_poll_interval_ms=WORKER_MAX_POLL_INTERVAL_MS
    )


def blocking_consumer_config(settings: KafkaSettings, group_id: str, client_id: str) -> dict[str, Any]:
    """A reader whose loop waits out a dependency's outage between polls
    (``BLOCKING_MAX_POLL_INTERVAL_MS``), e.g. one that retries Redis until it answers."""
    return consumer_config(settings, group_id, client_id, max_poll_interval_ms=BLOCKING_MAX_POLL_INTERVAL_MS)


def admin_config(settings: KafkaSettings, client_id: str | None = None, **overrides: Any) -> dict[str, Any]:
    """Admin and metadata clients (topics, offsets, probes); `overrides` are librdkafka properties,
    e.g. a short ``socket.timeout.ms`` for a probe. Security settings (``kafka.extra``) come along."""
    return {**_base(settings, client_id), **overrides}


def make_admin(settings: KafkaSettings, client_id: str | None = None, **overrides: Any) -> AdminClient:
    return AdminClient(admin_config(settings, client_id, **overrides))


# How long a producer waits for room in librdkafka's queue between tries, serving delivery reports.
QUEUE_FULL_POLL_S = 0.05


def produce_when_room(producer: Producer, topic: str, **record: Any) -> None:
    """`producer.produce(topic, **record)`, waiting while librdkafka's queue is full (Kafka away, or
    a burst) instead of dropping the record. Other errors (e.g. a record over the size limit) are
    raised."""
    while True:
        try:
            producer.produce(topic, **record)
            return
        except BufferError:
            producer.poll(QUEUE_FULL_POLL_S)


def make_producer(settings: KafkaSettings, client_id: str | None = None, **options: Any) -> Producer:
    return Producer(producer_config(settings, client_id, **options))


def make_consumer(
    settings: KafkaSettings, group_id: str, client_id: str | None = None, **options: Any
) -> Consumer:
    return Consumer(consumer_config(settings, group_id, client_id, **options))


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
