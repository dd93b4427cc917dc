"""Dead-lettering undeliverable alerts: the alert JSON untouched, why and for which endpoint
in `dlq-*` headers (schemas.dead_letter), so `sightline alerts resend-dead-letters` can re-send it.

One `DeadLetters` builds every webhook dead letter; the producer under it is the process's own
Kafka client: the faust app passes its aiokafka producer (one client stack per process), tools
outside it (`resend-dead-letters`) use `KafkaDeadLetters`, a confluent-kafka producer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from schemas.alert import AlertRecord
from schemas.dead_letter import dead_letter_headers
from streams.settings import KafkaSettings

if TYPE_CHECKING:
    from confluent_kafka import KafkaError, Message

STAGE = "webhook"  # a `dlq-stage` value of schemas/dead_letter.headers.schema.json
Headers = list[tuple[str, bytes]]
# (topic, key, value, headers): returns once the broker acknowledged the record, raises if not.
Produce = Callable[[str, bytes, bytes, Headers], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Source:
    """Where the alert was read from: kept in the dead letter for tracing."""

    topic: str
    partition: int
    offset: int


class DeadLetterSink(Protocol):
    async def send(
        self, alert: AlertRecord, body: bytes, endpoint: str, reason: str, source: Source | None
    ) -> None:
        """Durably store the alert; return only once the broker acknowledged it."""
        ...


class DeadLetters:
    def __init__(self, topic: str, produce: Produce) -> None:
        self.topic = topic
        self._produce = produce

    async def send(
        self, alert: AlertRecord, body: bytes, endpoint: str, reason: str, source: Source | None
    ) -> None:
        original = [("alert-id", alert.alert_id.encode()), ("alert-type", alert.type.encode())]
        headers = dead_letter_headers(
            original,
            reason,
            STAGE,
            source_topic=source.topic if source else None,
            source_partition=source.partition if source else None,
            source_offset=source.offset if source else None,
            endpoint=endpoint,
        )
        await self._produce(self.topic, alert.camera_id.encode(), body, headers)


class KafkaDeadLetters(DeadLetters):
    """With a confluent-kafka producer of its own: for tools outside the faust process."""

    def __init__(self, kafka: KafkaSettings, topic: str, client_id: str = "sightline-alerts-dlq") -> None:
        from streams.kafka import make_producer  # imported here: the faust process never loads it

        self.producer = make_producer(kafka, client_id, linger_ms=0)
        super().__init__(topic, self._send_acked)

    async def _send_acked(self, topic: str, key: bytes, value: bytes, headers: Headers) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def report(err: KafkaError | None, _msg: Message) -> None:
            def settle() -> None:
                if done.done():
                    return
                if err is None:
                    done.set_result(None)
                else:
                    done.set_exception(RuntimeError(f"dead-letter produce failed: {err}"))

            loop.call_soon_threadsafe(settle)

        self.producer.produce(topic, key=key, value=value, headers=headers, on_delivery=report)
        await asyncio.to_thread(self.producer.flush, 30.0)
        await done

    def close(self) -> None:
        self.producer.flush(10.0)
