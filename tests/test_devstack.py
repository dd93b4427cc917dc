from __future__ import annotations

import redis
from confluent_kafka.admin import AdminClient

from streams.topics import ensure_topics
from tests.conftest import Stack


def test_kafka_and_redis_are_real_and_up_is_idempotent(stack: Stack) -> None:
    statuses = {s.name: s for s in stack.dev.status()}
    assert statuses["kafka"].running and statuses["redis"].running
    pid_before = statuses["kafka"].pid
    again = {s.name: s for s in stack.dev.up()}
    assert again["kafka"].pid == pid_before, "a second `up` must report the running broker, not start one"
    metadata = AdminClient({"bootstrap.servers": stack.config.kafka.bootstrap_servers}).list_topics(
        timeout=10
    )
    assert len(metadata.brokers) == 1
    assert redis.Redis.from_url(stack.config.redis.url).ping()


def test_topics_are_created_with_partitions_and_existing_ones_checked(stack: Stack) -> None:
    config = stack.fresh_config("topics")
    metadata = AdminClient({"bootstrap.servers": config.kafka.bootstrap_servers}).list_topics(timeout=10)
    for topic in config.topics.all():
        assert len(metadata.topics[topic.name].partitions) == topic.partitions
    changed = config.model_copy(deep=True)
    changed.topics.frames.partitions = topic_partitions = config.topics.frames.partitions + 1
    reports = {r.name: r for r in ensure_topics(changed)}
    frames = reports[config.topics.frames.name]
    assert not frames.created
    assert frames.warning and f"config asks for {topic_partitions}" in frames.warning


def test_dev_status_json_reports_logs(stack: Stack, monkeypatch) -> None:  # noqa: ANN001
    import json

    from typer.testing import CliRunner

    from sightline.cli import app

    dev = stack.dev.settings
    for key, value in {"KAFKA_PORT": dev.kafka_port, "KAFKA_CONTROLLER_PORT": dev.kafka_controller_port,
                       "REDIS_PORT": dev.redis_port, "DATA_DIR": dev.data_dir}.items():  # fmt: skip
        monkeypatch.setenv(f"SIGHTLINE_DEV__{key}", str(value))
    result = CliRunner().invoke(app, ["dev", "status", "--json"])
    assert result.exit_code == 0, result.output
    statuses = {s["name"]: s for s in json.loads(result.output)}
    assert statuses["kafka"]["running"] and statuses["redis"]["running"]
    assert statuses["kafka"]["log_file"].endswith("kafka.log")
