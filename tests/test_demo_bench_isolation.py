"""Benchmarks share no state with the demo or with each other: they run on topics and consumer
groups of their own and delete them when they end, also when they fail."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient
from typer.testing import CliRunner

from sightline.bench.cleanup import removed_after
from sightline.cli import app
from streams.kafka import consumer_config
from tests.conftest import Stack, write_config


def _broker_state(stack: Stack) -> tuple[set[str], set[str]]:
    admin = AdminClient({"bootstrap.servers": stack.config.kafka.bootstrap_servers})
    topics = {t for t in admin.list_topics(timeout=10).topics if not t.startswith("__")}
    groups = {g.group_id for g in admin.list_consumer_groups(request_timeout=10).result().valid}
    return topics, groups


def _settled_state(stack: Stack, done: Callable[[set[str], set[str]], bool]) -> tuple[set[str], set[str]]:
    """The broker's topics and groups once `done` holds, or after 15 s: a deleted topic leaves
    the broker's metadata a moment after the controller confirmed the deletion."""
    deadline = time.monotonic() + 15
    while not done(*(state := _broker_state(stack))) and time.monotonic() < deadline:
        time.sleep(0.5)
    return state


def test_topics_and_groups_are_deleted_when_the_benchmark_fails(stack: Stack) -> None:
    """Named groups and topics, and those a stage names itself (found by prefix, as faust's)."""
    config = stack.fresh_config("bench-fails", partitions=1)
    prefix = config.topics.frames.name.split(".")[0]  # the fresh config's unique tag
    group, own_group = f"{prefix}-inference", f"{prefix}-app"
    config.inference.group_id = group
    with pytest.raises(RuntimeError, match="benchmark failed"), removed_after(config.kafka) as created:
        created.track(config)
        created.prefixes.add(prefix)
        for name in (group, own_group):
            consumer = Consumer(consumer_config(config.kafka, name))
            consumer.commit(offsets=[TopicPartition(config.topics.frames.name, 0, 0)], asynchronous=False)
            consumer.close()
        assert {group, own_group} <= _broker_state(stack)[1]  # the groups exist on the broker now
        raise RuntimeError("benchmark failed")
    names = {t.name for _, t in config.topics}
    topics, groups = _settled_state(stack, lambda topics, groups: not names & topics)
    assert not names & topics, "topics left behind"
    assert not {group, own_group} & groups, "consumer groups left behind"


def test_bench_inference_leaves_no_topics_or_groups(stack: Stack, own_registry: Path, tmp_path: Path) -> None:
    before = _broker_state(stack)
    args = ["-c", str(write_config(stack.config, tmp_path / "sightline.yaml")), "bench", "inference"]
    args += ["--json", "--frames", "12", "--rounds", "1", "--raw-s", "0.5", "--no-latency"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["drain"]["exactly-once"]["published"] == 12
    topics, groups = _settled_state(stack, lambda topics, groups: topics <= before[0])
    assert topics - before[0] == set(), "bench topics left behind"
    assert groups - before[1] == set(), "bench consumer groups left behind"
