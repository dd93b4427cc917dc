"""The rules topic, read and written with confluent-kafka (CLI, API, test-rules, start-up).

Saving picks the next number, produces the version and reads the topic back: when another writer
took that number first (the first record of a number wins, for every reader), the save fails
with `VersionConflict` instead of silently losing to it.
"""

from __future__ import annotations

import logging
import time
import uuid

from confluent_kafka import Consumer

from alerts.settings import RulesSettings
from alerts.versions import Catalog, new_record
from schemas.errors import ContractError
from schemas.rules_version import RulesVersionRecord, version_key
from streams import topic_reader
from streams.kafka import consumer_config, make_producer
from streams.settings import KafkaSettings

log = logging.getLogger(__name__)


class VersionConflict(RuntimeError):
    """Another writer saved the same version number first; read again and retry."""


def read_catalog(kafka: KafkaSettings, topic: str, timeout_s: float = 10.0) -> tuple[Catalog, int]:
    """Every committed version on the topic, and the offset after the last one read.

    A missing topic is an empty catalog (nothing saved yet). Records that break the contract
    are logged and skipped: a bad write must not stop the processors.
    """
    config = consumer_config(kafka, f"sightline-rules-{uuid.uuid4().hex[:8]}", "sightline-rules-reader")
    consumer = Consumer({**config, "enable.partition.eof": True})
    records: list[RulesVersionRecord] = []
    end = 0
    try:
        for msg in topic_reader.read_topic(consumer, topic, partitions=[0], timeout_s=timeout_s):
            end = (msg.offset() or 0) + 1
            try:
                records.append(RulesVersionRecord.decode(msg.value() or b""))
            except ContractError as exc:
                log.error("rules topic %s:0:%d: %s; skipped", topic, msg.offset(), exc.reason)
        [span] = topic_reader.spans(consumer, topic, partitions=[0])
        end = max(end, span.end)
    except topic_reader.TopicMissing:
        return Catalog(), 0
    finally:
        consumer.close()
    return Catalog.of(records), end


class RulesStore:
    """Versions on `topic`; `fallback` (the rules file) is version 0."""

    def __init__(self, kafka: KafkaSettings, topic: str, fallback: RulesSettings) -> None:
        self.kafka = kafka
        self.topic = topic
        self.fallback = fallback

    def catalog(self) -> Catalog:
        return read_catalog(self.kafka, self.topic)[0]

    def save(
        self, rules: RulesSettings, author: str, comment: str = "", copied_from: int | None = None
    ) -> RulesVersionRecord:
        """`rules` as the next version; raises `VersionConflict` when another writer won it."""
        record = new_record(self.catalog(), rules, author, comment, time.time_ns(), copied_from)
        producer = make_producer(self.kafka, "sightline-rules-writer", linger_ms=0)
        producer.produce(self.topic, key=version_key(record.version), value=record.encode())
        if producer.flush(30) != 0:
            raise TimeoutError(f"the broker did not acknowledge rules version {record.version} within 30 s")
        winner = self.catalog().versions.get(record.version)
        if winner is None or winner.write_id != record.write_id:
            raise VersionConflict(f"version {record.version} was saved by someone else meanwhile; try again")
        return record

    def rollback(self, author: str, to: int | None = None, comment: str = "") -> RulesVersionRecord:
        """Save version `to` (default: the one before the latest; 0 is the rules file) again as
        the next version."""
        catalog = self.catalog()
        if catalog.latest == 0:
            raise KeyError("no rules version is saved; the rules file is in force")
        target = catalog.previous() if to is None else to
        if target == catalog.latest:
            raise ValueError(f"version {target} is already in force")
        rules = catalog.rules(target, self.fallback)
        note = comment or f"rollback to version {target}"
        return self.save(rules, author, note, copied_from=target)
