"""Saved rules versions against the real broker and Redis: the CLI, the processors switching
without a restart (exactly once across the switch and a crash after it), and trying a draft."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from confluent_kafka import KafkaException

from alerts.replay_rules import Located, Switch, evaluate
from alerts.rules_store import RulesStore
from alerts.settings import RulesSettings
from alerts.try_rules import try_rules
from alerts.webhooks.receiver import Receiver
from schemas.alert import AlertRecord
from streams.kafka import make_producer
from tests.alerts.helpers import (
    REPO,
    SECRET,
    Processor,
    alerts_config,
    produce_records,
    wait_for,
    write_config,
)
from tests.alerts.rules_scenario import records, rules_v1, rules_v2
from tests.alerts.test_processor import _all_committed
from tests.conftest import Stack

SWITCHED = re.compile(r"rules: version (\d+) in force from (\S+)")


def _applied(config: object, group: str, topic: str) -> bool:
    try:
        return _all_committed(config, group, topic)
    except KafkaException:  # the group coordinator of a fresh broker is still loading
        return False


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sightline.cli", *args], cwd=REPO, capture_output=True, text=True, timeout=120
    )


@pytest.mark.timeout(180)
def test_rules_cli_apply_list_show_diff_rollback(stack: Stack, tmp_path: Path) -> None:
    config = alerts_config(stack.fresh_config("rules-cli", partitions=1), rules_v1(), [])
    cfg = str(write_config(config, tmp_path / "sightline.yaml"))
    v2 = tmp_path / "v2.yaml"
    v2.write_text(yaml.safe_dump(rules_v2()))
    assert "no version saved yet" in cli("-c", cfg, "rules", "list").stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "version: 1\ncameras:\n  - camera: c1\n    lanes:\n      - name: l1\n        colour: red\n"
    )
    refused = cli("-c", cfg, "rules", "apply", str(bad))
    assert refused.returncode == 2 and "bad.yaml:6: cameras.0.lanes.0.colour" in refused.stderr
    dry = cli("-c", cfg, "rules", "apply", str(v2), "--dry-run")
    assert dry.returncode == 0 and "would be version 1" in dry.stdout and "+    k: 3" in dry.stderr
    saved = cli("-c", cfg, "rules", "apply", str(v2), "-m", "stricter scratches", "--author", "ann")
    assert saved.returncode == 0, saved.stderr
    assert "version 1 saved" in saved.stdout
    again = cli("-c", cfg, "rules", "apply", str(v2))
    assert again.returncode == 0 and "nothing saved" in again.stdout
    listing = json.loads(cli("-c", cfg, "rules", "list", "--json").stdout)
    assert listing["in_force"] == 1
    assert [(v["version"], v["author"], v["comment"]) for v in listing["versions"]] == [
        (1, "ann", "stricter scratches")
    ]
    shown = yaml.safe_load(cli("-c", cfg, "rules", "show", "1", "--camera", "cam-0").stdout)
    assert shown["cameras"][0]["defects"][0]["k"] == 3
    diff = cli("-c", cfg, "rules", "diff")
    assert diff.returncode == 1 and "-    k: 2" in diff.stdout and "+    k: 3" in diff.stdout
    assert "# cam-0: state starts fresh for scratch; kept for door" in diff.stdout
    back = cli("-c", cfg, "rules", "rollback", "-m", "too strict")
    assert back.returncode == 0 and "version 2 saved" in back.stdout and "version 0" in back.stdout
    store = RulesStore(config.kafka, config.topics.rules.name, RulesSettings(**rules_v1()))
    catalog = store.catalog()
    assert catalog.latest == 2 and catalog.get(2).copied_from == 0
    assert catalog.rules(2, store.fallback) == RulesSettings(**rules_v1())
    assert cli("-c", cfg, "rules", "diff", "0", "2").returncode == 0


@pytest.mark.timeout(300)
def test_processors_switch_rules_mid_stream_exactly_once(stack: Stack, tmp_path: Path) -> None:
    """Version 0 (the config's rules) until a version is saved mid-stream; a kill -9 after the
    switch. What the webhook gets is what test-rules computes with the same switch point."""
    recs = records(cameras=2, frames=300)
    half = len(recs) // 2
    base = stack.fresh_config("rules-live", partitions=1)
    with Receiver(SECRET) as rx:
        hook = {
            "name": "ops",
            "url": rx.url,
            "backoff_initial_s": 0.05,
            "backoff_max_s": 0.5,
            "max_attempts": 1000,
        }
        config = alerts_config(base, rules_v1(), [hook])
        path = write_config(config, tmp_path / "sightline.yaml")
        log = tmp_path / "processor.log"
        produce_records(config, recs[:half])
        proc = Processor(path, log).start()
        try:
            group, topic = config.alerts.app_id, config.topics.detections.name
            wait_for(lambda: _applied(config, group, topic), 90, "the first half applied", proc)
            store = RulesStore(config.kafka, config.topics.rules.name, RulesSettings(**rules_v1()))
            assert store.save(RulesSettings(**rules_v2()), "test", "k=3 on cam-0").version == 1

            def paced() -> None:
                producer = make_producer(config.kafka, "test-paced", linger_ms=1)
                for i in range(half, len(recs), 10):
                    produce_records(config, recs[i : i + 10], producer)
                    time.sleep(0.1)

            feeder = threading.Thread(target=paced)
            feeder.start()
            wait_for(lambda: SWITCHED.search(log.read_text()) is not None, 60, "the switch", proc)
            wait_for(
                lambda: any(json.loads(d.body)["rules_version"] == 1 for d in rx.deliveries), 60, "v1 alerts"
            )
            proc.kill9()
            proc = Processor(path, log).start()
            feeder.join()
            m = SWITCHED.search(log.read_text())
            assert m is not None and m[1] == "1"
            point = int(m[2].rsplit(":", 1)[1])
            assert m[2] == f"{topic}:0:{point}"
            where = [Located(r, 0, i) for i, r in enumerate(recs)]
            expected = evaluate(
                RulesSettings(**rules_v1()),
                where,
                flush=False,
                switches=[Switch(RulesSettings(**rules_v2()), 1, point)],
            )
            want = {a.alert_id for a in expected}
            wait_for(lambda: want <= set(rx.ids()), 120, "every expected alert", proc)
            time.sleep(2.0)  # a duplicate or an extra alert would show up now
        finally:
            proc.stop()
        assert 0 < point < len(recs)
        assert rx.ids() == {a.alert_id: 1 for a in expected}, "lost, extra or duplicated alerts"
        live = {a.alert_id: a for a in (AlertRecord.decode(d.body) for d in rx.deliveries)}
        for alert in expected:  # same version label and same evidence (tallies kept across the switch)
            assert (live[alert.alert_id].rules_version, live[alert.alert_id].evidence) == (
                alert.rules_version,
                alert.evidence,
            )
        assert {a.rules_version for a in expected} == {0, 1}
        # test-rules, given the same switch point, prints the same alerts.
        out = cli(
            "alerts", "test-rules", "-c", str(path), "--from", f"{topic}:0", "--rules", "v0",
            "--switch", f"v1@0:{point}", "--no-flush",
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert [json.loads(line)["alert_id"] for line in out.stdout.splitlines()] == [
            a.alert_id for a in expected
        ]


@pytest.mark.timeout(120)
def test_try_a_draft_on_recent_detections(stack: Stack) -> None:
    config = stack.fresh_config("rules-try", partitions=2)
    recs = records(cameras=2, frames=200)
    produce_records(config, recs)
    live, draft = RulesSettings(**rules_v1()), RulesSettings(**rules_v2())
    result = try_rules(config.kafka, config.topics.detections.name, "cam-0", draft, live, 4, minutes=5)
    cam0 = [r for r in recs if r.camera_id == "cam-0"]
    assert result.records == len(cam0)
    only = {"version": 1, "cameras": [rules_v2()["cameras"][0]]}
    assert [a.alert_id for a in result.draft] == [a.alert_id for a in evaluate(RulesSettings(**only), cam0)]
    assert {a.rules_version for a in result.draft} == {None}
    assert {a.rules_version for a in result.live} == {4} and {a.camera_id for a in result.live} == {"cam-0"}
    assert len(result.draft) < len(result.live)  # k=3 raises fewer defects than k=2
    body = result.as_dict()
    assert body["draft"]["count"] == len(result.draft) and body["records"] == len(cam0)
    # Only records of the last N minutes: produced now, so a tiny window still holds them; none
    # are older than that.
    assert try_rules(config.kafka, config.topics.detections.name, "cam-9", draft, live, 4).records == 0


@pytest.mark.timeout(60)
def test_a_successor_finishes_what_was_published_under_the_older_version(stack: Stack) -> None:
    """A version is saved, then the processor crashes before switching to it, with alerts of
    records after its checkpoint published under the older version; its successor (twice: it
    crashes too) starts on the newer version yet re-applies those records under the older one."""
    import asyncio
    import uuid

    from alerts.checkpoint import CheckpointStore, connect
    from alerts.engine import Engine
    from alerts.progress import RulesProgress
    from alerts.runner import BatchResult, RawRecord

    recs = records(cameras=2, frames=150)
    raws = [RawRecord("det", 0, i, r.encode()) for i, r in enumerate(recs)]
    v1, v2 = RulesSettings(**rules_v1()), RulesSettings(**rules_v2())
    resolve = {0: v1, 1: v2}.__getitem__
    published: dict[str, AlertRecord] = {}

    async def publish(result: BatchResult) -> None:
        for alert in result.alerts:
            assert published.setdefault(alert.alert_id, alert) == alert, "re-published differently"

    async def scenario() -> tuple[bool, bool]:
        store = CheckpointStore(connect(stack.config.redis.url), f"test:marks:{uuid.uuid4().hex[:8]}", "app")

        def progress(version: int) -> RulesProgress:
            return RulesProgress(Engine(resolve(version), version, resolve), store, "det", "pos", publish)

        first = progress(0)
        await first.advance(raws[:100])
        await first.commit()
        await first.advance(raws[100:200])  # published, not checkpointed: then a crash
        second = progress(1)  # version 1 was saved meanwhile
        await second.advance(raws[100:150])
        midway = second.replaying  # and it crashes too
        third = progress(1)
        for i in range(100, len(raws), 40):
            await third.advance(raws[i : i + 40])
        await third.commit()
        await store.redis.aclose()
        return midway, third.replaying

    midway, after = asyncio.run(scenario())
    assert midway and not after
    where = [Located(r, 0, i) for i, r in enumerate(recs)]
    expected = evaluate(v1, where, flush=False, switches=[Switch(v2, 1, 200)])
    too_early = evaluate(v1, where, flush=False, switches=[Switch(v2, 1, 100)])
    assert {a.alert_id for a in too_early} != {a.alert_id for a in expected}, "the scenario tells them apart"
    assert published == {a.alert_id: a for a in expected}
