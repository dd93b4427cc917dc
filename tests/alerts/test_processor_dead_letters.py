"""The processor dead-letters what an endpoint refuses through faust's own producer (one Kafka
client stack in the process); `resend-dead-letters` then delivers it once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from alerts.replay_rules import evaluate
from alerts.settings import RulesSettings
from alerts.webhooks.dead_letters import STAGE
from alerts.webhooks.receiver import Receiver, Reply
from alerts.webhooks.replay import replay
from schemas.alert import AlertRecord
from schemas.dead_letter import parse_dead_letter
from tests.alerts.helpers import (
    SECRET,
    SECRET_ENV,
    Processor,
    alerts_config,
    committed,
    produce_records,
    read_topic,
    wait_for,
    write_config,
)
from tests.alerts.test_processor import RULES, factory_records
from tests.conftest import Stack


@pytest.mark.timeout(180)
def test_refused_alerts_are_dead_lettered_by_the_processor_and_resent_once(
    stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    records = factory_records()
    expected = evaluate(RulesSettings(**RULES), records, flush=False)
    assert {a.type for a in expected} == {"defect", "spike"}
    base = stack.fresh_config("alerts-proc-dlq", partitions=1)
    with Receiver(SECRET) as rx:
        rx.behaviour = lambda n, _id: Reply(400)
        config = alerts_config(base, RULES, [{"name": "ops", "url": rx.url}])
        path = write_config(config, tmp_path / "sightline.yaml")
        produce_records(config, records)
        proc = Processor(path, tmp_path / "processor.log").start()
        dlq = config.topics.dead_letter.name

        def delivery_done() -> bool:
            done, ends = committed(config, config.alerts.app_id, config.topics.alerts.name)
            return ends.get(0, 0) == len(expected) and done.get(0) == len(expected)

        try:
            wait_for(lambda: len(read_topic(config, dlq)) >= len(expected), 90, "the dead letters", proc)
            wait_for(delivery_done, 30, "the delivery agent to commit", proc)
        finally:
            proc.stop()
        parked = read_topic(config, dlq)
        assert rx.ids() == {}
        assert sorted(AlertRecord.decode(body).alert_id for _, body in parked) == sorted(
            a.alert_id for a in expected
        )
        for headers, _ in parked:
            info = parse_dead_letter(headers)
            assert (info.stage, info.endpoint, info.source_topic) == (STAGE, "ops", config.topics.alerts.name)
            assert info.reason.startswith("http 400")
        rx.behaviour = lambda n, _id: Reply(200)
        assert asyncio.run(replay(config)).outcomes == {"delivered": len(expected)}
        assert rx.ids() == {a.alert_id: 1 for a in expected}
