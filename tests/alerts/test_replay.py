"""Re-sending dead letters to webhooks, and test-rules over files and topic ranges."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from redis.asyncio import Redis

from alerts.replay_rules import TopicRange
from alerts.webhooks.dead_letters import STAGE, KafkaDeadLetters
from alerts.webhooks.dispatcher import Dispatcher
from alerts.webhooks.receiver import Receiver, Reply
from alerts.webhooks.replay import replay
from schemas.dead_letter import parse_dead_letter
from tests.alerts.helpers import (
    REPO,
    SECRET,
    SECRET_ENV,
    alerts_config,
    produce_records,
    read_topic,
    write_config,
)
from tests.alerts.test_processor import RULES, checkout_records, factory_records
from tests.alerts.test_webhooks import make_alert
from tests.conftest import Stack


@pytest.mark.timeout(120)
def test_4xx_goes_to_dead_letter_topic_and_replay_resends_once(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    base = stack.fresh_config("alerts-dlq", partitions=1)
    with Receiver(SECRET) as rx, Receiver(SECRET) as other:
        rx.behaviour = lambda n, _id: Reply(400)
        config = alerts_config(
            base, {"cameras": []}, [{"name": "ops", "url": rx.url}, {"name": "other", "url": other.url}]
        )
        alerts = [make_alert(i) for i in range(5)]

        async def send_all() -> None:
            redis = Redis.from_url(config.redis.url)
            sink = KafkaDeadLetters(config.kafka, config.topics.dead_letter.name)
            dispatcher = Dispatcher.build(config.alerts, redis, sink)
            try:
                await asyncio.gather(*(dispatcher.dispatch(a) for a in alerts))
            finally:
                await dispatcher.aclose()
                sink.close()
                await redis.aclose()

        asyncio.run(send_all())
        assert rx.ids() == {} and len(other.ids()) == 5
        parked = read_topic(config, config.topics.dead_letter.name)
        assert len(parked) == 5
        info = parse_dead_letter(parked[0][0])
        assert info.stage == STAGE and info.endpoint == "ops" and info.reason.startswith("http 400")
        # The receiver is fixed; replay re-sends the parked alerts to "ops" only, once.
        rx.behaviour = lambda n, _id: Reply(200)
        report = asyncio.run(replay(config))
        assert report.outcomes == {"delivered": 5}
        assert rx.ids() == {a.alert_id: 1 for a in alerts} and len(other.ids()) == 5
        assert asyncio.run(replay(config)).scanned == 0  # progress was committed
        again = asyncio.run(replay(config, from_beginning=True))
        assert again.outcomes == {"duplicate": 5}  # delivered already: never twice
        assert rx.ids() == {a.alert_id: 1 for a in alerts}


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sightline.cli", "alerts", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.timeout(120)
def test_replay_rules_is_deterministic_for_files_and_topic_ranges(stack: Stack, tmp_path: Path) -> None:
    records = checkout_records() + factory_records()
    data = tmp_path / "detections.jsonl"
    data.write_text("".join(r.encode().decode() + "\n" for r in records))
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(RULES))
    first = run_cli("test-rules", "--from", str(data), "--rules", str(rules))
    second = run_cli("test-rules", "--from", str(data), "--rules", str(rules))
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout and first.stdout.count("\n") >= 4
    assert '"type":"defect"' in first.stdout and '"type":"spike"' in first.stdout

    config = stack.fresh_config("alerts-rr", partitions=1)
    produce_records(config, records)
    cfg_path = write_config(alerts_config(config, {"cameras": []}, []), tmp_path / "sightline.yaml")
    topic = config.topics.detections.name
    whole = run_cli(
        "test-rules",
        "--from",
        f"{topic}:0:0-{len(records) - 1}",
        "--rules",
        str(rules),
        "-c",
        str(cfg_path),
    )
    assert whole.returncode == 0, whole.stderr
    assert whole.stdout == first.stdout
    part = run_cli("test-rules", "--from", f"{topic}:0:0-99", "--rules", str(rules), "-c", str(cfg_path))
    assert part.returncode == 0, part.stderr
    assert part.stdout and part.stdout != first.stdout


def test_rules_file_errors_name_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "rules.yaml"
    bad.write_text(
        "version: 1\ncameras:\n  - camera: c1\n    lanes:\n      - name: l1\n        colour: red\n"
    )
    result = run_cli("test-rules", "--from", str(bad), "--rules", str(bad))
    assert result.returncode == 2
    assert "rules.yaml:6: cameras.0.lanes.0.colour: unknown key" in result.stderr
    assert "unknown key 'colour' in cameras.0.lanes.0; valid keys: " in result.stderr  # lists them


def test_topic_range_parsing() -> None:
    assert TopicRange.parse("sightline.detections:0:100-500") == TopicRange(
        "sightline.detections", 0, 100, 500
    )
    assert TopicRange.parse("t:2") == TopicRange("t", 2)
    assert TopicRange.parse("t:1:5-") == TopicRange("t", 1, 5, None)
    with pytest.raises(ValueError):
        TopicRange.parse("t:1:9-3")


def test_old_command_names_still_work_with_a_notice(tmp_path: Path) -> None:
    """`replay` and `replay-rules` were renamed; scripts using them keep working."""
    bad = tmp_path / "rules.yaml"
    bad.write_text("version: 1\ncameras:\n  - camera: c1\n    colour: red\n")
    old = run_cli("replay-rules", "--from", str(bad), "--rules", str(bad))
    new = run_cli("test-rules", "--from", str(bad), "--rules", str(bad))
    assert old.returncode == new.returncode == 2
    assert "`sightline alerts replay-rules` is deprecated; use `sightline alerts test-rules`" in old.stderr
    assert old.stderr.endswith(new.stderr) and "deprecated" not in new.stderr
    resend = run_cli("replay", "--help")
    assert resend.returncode == 0 and "Re-send dead-lettered alerts" in resend.stdout
    listing = run_cli("--help").stdout
    assert "resend-dead-letters" in listing and "test-rules" in listing
    assert "replay" not in listing
