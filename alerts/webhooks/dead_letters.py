"""Dead-lettering undeliverable alerts: the alert JSON untouched, why and for which endpoint
in `dlq-*` headers (schemas.dead_letter), so `sightline alerts resend-dead-letters` can re-send it."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Protocol

from confluent_kafka import KafkaError, Message

from schemas.alert import AlertRecord
from schemas.dead_letter import dead_letter_headers
from streams.kafka import make_producer
from streams.settings import KafkaSettings

log = logging.getLogger(__name__)
STAGE = "webhook"  # a `dlq-stage` value of schemas/dead_letter.headers.schema.json


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


class KafkaDeadLetters:
    def __init__(self, kafka: KafkaSettings, topic: str, client_id: str = "sightline-alerts-dlq") -> None:
        self.topic = topic
        self.producer = make_producer(kafka, client_id, linger_ms=0)

    async def send(
        self, alert: AlertRecord, body: bytes, endpoint: str, reason: str, source: Source | None
    ) -> None:
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
        self.producer.produce(
            self.topic, key=alert.camera_id.encode(), value=body, headers=headers, on_delivery=report
        )
        await asyncio.to_thread(self.producer.flush, 30.0)
        await done

    def close(self) -> None:
        self.producer.flush(10.0)
