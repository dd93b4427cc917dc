"""RulesProgress commit and abort against the real broker and Redis: records read from a topic,
alerts published to a topic, state checkpointed in Redis; aborts land mid-stream, and a publish
the broker refuses aborts too. Each alert must come out once with the offline evidence."""

from __future__ import annotations

import asyncio
import uuid

from confluent_kafka import Producer

from alerts.checkpoint import CheckpointStore, connect
from alerts.engine import Engine
from alerts.progress import RulesProgress
from alerts.replay_rules import evaluate
from alerts.runner import BatchResult, RawRecord
from alerts.settings import RulesSettings
from schemas.alert import AlertRecord
from sightline.config import SightlineConfig
from streams import topic_reader
from streams.kafka import make_consumer, make_producer
from tests.alerts.helpers import produce_records
from tests.alerts.helpers import read_topic as read_all
from tests.alerts.test_faults import lane_scenario
from tests.conftest import Stack

BATCH = 40


def read_records(config: SightlineConfig) -> list[RawRecord]:
    """The detections topic (one partition) with its offsets, as the rules agent takes it."""
    topic = config.topics.detections.name
    consumer = make_consumer(config.kafka, f"test-progress-{uuid.uuid4().hex[:6]}")
    try:
        return [
            RawRecord(topic, 0, msg.offset(), msg.value())
            for msg in topic_reader.read_topic(consumer, topic, partitions=[0])
        ]
    finally:
        consumer.close()


class BrokerPublish:
    """Publishes alerts to the real alerts topic; refuses (before sending anything) when told."""

    def __init__(self, config: SightlineConfig) -> None:
        self.topic = config.topics.alerts.name
        self.producer: Producer = make_producer(config.kafka, "test-progress", linger_ms=1)
        self.refuse = 0

    async def __call__(self, result: BatchResult) -> None:
        if self.refuse:
            self.refuse -= 1
            raise RuntimeError("the broker refused the batch")
        for alert in result.alerts:
            self.producer.produce(self.topic, key=alert.camera_id.encode(), value=alert.encode())
        assert await asyncio.to_thread(self.producer.flush, 30) == 0


def test_abort_rewinds_to_the_checkpoint_and_nothing_counts_twice(stack: Stack) -> None:
    rules, records = lane_scenario(cameras=2, frames=150)
    expected = evaluate(RulesSettings(**rules), records, flush=False)
    assert len(expected) > 20
    config = stack.fresh_config("alerts-progress", partitions=1)
    produce_records(config, records)
    raws = read_records(config)
    assert len(raws) == len(records)
    applied = asyncio.run(_run(stack, config, rules, raws))
    # The aborts really threw work away: some records were applied twice to the engine...
    assert applied > len(raws)
    got = [AlertRecord.decode(v) for _, v in read_all(config, config.topics.alerts.name)]
    # ...yet every alert is on the topic once, with the evidence (tallies) of one clean pass.
    assert sorted(a.alert_id for a in got) == sorted(a.alert_id for a in expected)
    live = {a.alert_id: a for a in got}
    for alert in expected:
        assert live[alert.alert_id].evidence == alert.evidence


async def _run(stack: Stack, config: SightlineConfig, rules: dict, raws: list[RawRecord]) -> int:
    prefix = f"test:progress:{uuid.uuid4().hex[:8]}"
    store = CheckpointStore(connect(stack.config.redis.url), prefix, "app")
    det, pos = config.topics.detections.name, config.topics.pos_events.name
    publish = BrokerPublish(config)
    progress = RulesProgress(Engine(RulesSettings(**rules)), store, det, pos, publish)
    applied = acked = 0
    batches = [raws[i : i + BATCH] for i in range(0, len(raws), BATCH)]
    for n, batch in enumerate(batches):
        if n % 5 == 3:
            publish.refuse = 1  # refused once: abort, then batch 2 (held) and this one go in again
            try:
                await progress.advance(batch)
            except RuntimeError:
                progress.abort()
        applied += (await progress.advance(batch)).applied
        if n % 5 == 4:
            progress.abort()  # e.g. a checkpoint that failed: batches 2..4 are thrown away
        elif n % 5 in (0, 1):
            acked += len(await progress.commit())
    acked += len(await progress.commit())
    assert acked == len(raws), "every record is handed back for acking exactly once"
    assert await store.offsets() == {f"{det}:0": raws[-1].offset}
    # A restart from the checkpoint applies nothing again.
    restarted = RulesProgress(Engine(RulesSettings(**rules)), store, det, pos, publish)
    again = await restarted.advance(raws)
    assert (again.applied, again.replayed, again.alerts) == (0, len(raws), [])
    await store.redis.aclose()
    return applied
