"""The processors' view of the rules topic: every saved version, followed live.

Read once with confluent-kafka before faust starts (so the first record is applied under the
version in force), then followed by an aiokafka consumer inside the app: one Kafka client stack
while faust runs. No consumer group: every processor reads every version.
"""

from __future__ import annotations

import asyncio
import logging

import aiokafka

from alerts.rules_store import read_catalog
from alerts.settings import RulesSettings
from schemas.errors import ContractError
from schemas.rules_version import RulesVersionRecord
from streams.settings import KafkaSettings

log = logging.getLogger(__name__)


class RulesWatch:
    def __init__(self, kafka: KafkaSettings, topic: str, fallback: RulesSettings) -> None:
        self.kafka = kafka
        self.topic = topic
        self.fallback = fallback
        self.catalog, self._next = read_catalog(kafka, topic)

    @property
    def latest(self) -> int:
        return self.catalog.latest

    def rules(self, version: int) -> RulesSettings:
        return self.catalog.rules(version, self.fallback)

    async def follow(self, stop: asyncio.Event | None = None) -> None:
        """Add versions as they are saved, until cancelled; reconnects on its own."""
        while stop is None or not stop.is_set():
            consumer = aiokafka.AIOKafkaConsumer(
                bootstrap_servers=self.kafka.bootstrap_servers,
                client_id=f"{self.kafka.client_id}-rules-watch",
                group_id=None,
                enable_auto_commit=False,
                isolation_level="read_committed",
            )
            try:
                await consumer.start()
                tp = aiokafka.TopicPartition(self.topic, 0)
                consumer.assign([tp])
                consumer.seek(tp, self._next)
                while stop is None or not stop.is_set():
                    batch = await consumer.getmany(tp, timeout_ms=500)
                    for msg in batch.get(tp, []):
                        self._next = msg.offset + 1
                        self._add(msg.value or b"", msg.offset)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker away: keep the versions known, retry
                log.warning("rules topic %s: %s; retrying", self.topic, exc)
                await asyncio.sleep(1.0)
            finally:
                await consumer.stop()

    def _add(self, value: bytes, offset: int) -> None:
        try:
            record = RulesVersionRecord.decode(value)
        except ContractError as exc:
            log.error("rules topic %s:0:%d: %s; skipped", self.topic, offset, exc.reason)
            return
        if self.catalog.add(record):
            log.warning("rules: version %d saved by %s (%s)", record.version, record.author, record.comment)
