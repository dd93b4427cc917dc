"""`sightline alerts resend-dead-letters`: re-send dead-lettered alerts to the endpoint that refused them.

Progress is kept as the committed offsets of a consumer group, so each run picks up where
the previous one stopped; delivery de-duplication makes a repeated replay harmless.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass, field

from confluent_kafka import Consumer, TopicPartition

from alerts.checkpoint import connect
from alerts.settings import AlertsConfig
from alerts.webhooks.dead_letters import STAGE, KafkaDeadLetters, Source
from alerts.webhooks.dispatcher import Dispatcher
from schemas.alert import AlertRecord
from schemas.dead_letter import parse_dead_letter
from schemas.errors import ContractError
from streams.kafka import make_consumer
from streams.topic_reader import partitions_of, read_spans, spans

log = logging.getLogger(__name__)


@dataclass
class ParkedAlert:
    alert: AlertRecord
    body: bytes
    endpoint: str
    reason: str
    source: Source


@dataclass
class ReplayReport:
    scanned: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, object]:
        return {"scanned": self.scanned, **dict(self.outcomes), "skipped": dict(self.skipped)}


@dataclass
class Batch:
    parked: list[ParkedAlert]
    consumer: Consumer
    scanned: int
    ends: list[TopicPartition]


def read_parked(config: AlertsConfig, group: str, from_beginning: bool) -> Batch:
    """Everything on the dead-letter topic up to its current end, from this stage only."""
    topic = config.topics.dead_letter.name
    consumer = make_consumer(config.kafka, group, "sightline-alerts-replay")
    start = None
    if not from_beginning:
        parts = [TopicPartition(topic, p) for p in partitions_of(consumer, topic)]
        start = {tp.partition: tp.offset for tp in consumer.committed(parts, timeout=10)}
    todo = spans(consumer, topic, start=start)
    parked: list[ParkedAlert] = []
    scanned = 0
    for msg in read_spans(consumer, topic, todo):
        scanned += 1
        try:
            info = parse_dead_letter(msg.headers())
        except (KeyError, ValueError):
            continue
        if info.stage != STAGE or info.endpoint is None:
            continue
        try:
            alert = AlertRecord.decode(msg.value() or b"")
        except ContractError as exc:
            log.warning("skipping dead letter at offset %s: %s", msg.offset(), exc)
            continue
        parked.append(ParkedAlert(alert, msg.value() or b"", info.endpoint, info.reason,
                                  Source(topic, msg.partition(), msg.offset())))  # fmt: skip
    return Batch(parked, consumer, scanned, [TopicPartition(topic, s.partition, s.end) for s in todo])


async def replay(
    config: AlertsConfig,
    *,
    endpoint: str | None = None,
    from_beginning: bool = False,
    dry_run: bool = False,
) -> ReplayReport:
    group = f"{config.alerts.app_id}-dlq-replay"
    batch = await asyncio.to_thread(read_parked, config, group, from_beginning)
    parked, consumer = batch.parked, batch.consumer
    report = ReplayReport(scanned=batch.scanned)
    redis = connect(config.redis.url)
    sink = KafkaDeadLetters(config.kafka, config.topics.dead_letter.name)
    dispatcher = Dispatcher.build(config.alerts, redis, sink, config.evidence.urls)
    known = {e.name for e in dispatcher.endpoints}
    try:
        jobs = []
        for item in parked:
            if endpoint is not None and item.endpoint != endpoint:
                report.skipped["other endpoint"] += 1
            elif item.endpoint not in known:
                report.skipped["endpoint no longer configured"] += 1
            elif dry_run:
                report.outcomes["would replay"] += 1
            else:
                jobs.append(dispatcher.dispatch(item.alert, item.body, item.source, only=item.endpoint))
        for outcomes in await asyncio.gather(*jobs):
            for outcome in outcomes.values():
                report.outcomes[outcome.status] += 1
        if not dry_run:
            await asyncio.to_thread(consumer.commit, offsets=batch.ends, asynchronous=False)
    finally:
        await dispatcher.aclose()
        sink.close()
        await redis.aclose()
        consumer.close()
    return report
