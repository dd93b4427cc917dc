"""Creates the Sightline topics, or checks the ones that already exist."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from streams.kafka import make_admin
from streams.settings import StreamsConfig, TopicSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicReport:
    name: str
    created: bool
    partitions: int
    warning: str | None = None


def ensure_topics(config: StreamsConfig, timeout: float = 30.0) -> list[TopicReport]:
    """Idempotent: existing topics are left alone but reported when they differ from config."""
    admin = make_admin(config.kafka)
    wanted: list[TopicSettings] = config.topics.all()
    existing = admin.list_topics(timeout=timeout).topics
    reports: list[TopicReport] = []
    to_create = [
        NewTopic(
            t.name,
            num_partitions=t.partitions,
            # The cluster's default.replication.factor and min.insync.replicas: the dev stack
            # sets 1 and 1 for one broker, 3 and 2 for three (docs/deployment.md).
            replication_factor=-1,
            config={
                "retention.ms": str(t.retention_ms),
                "max.message.bytes": str(config.kafka.message_max_bytes),
                **t.configs,
            },
        )
        for t in wanted
        if t.name not in existing
    ]
    if to_create:
        for name, future in admin.create_topics(to_create, operation_timeout=timeout).items():
            try:
                future.result()
            except KafkaException as exc:
                if exc.args[0].code() != 36:  # TOPIC_ALREADY_EXISTS: another process won the race
                    raise
            reports.append(TopicReport(name, True, next(t.partitions for t in wanted if t.name == name)))
        _wait_visible(admin, [t.topic for t in to_create], timeout)
    for topic in wanted:
        if topic.name not in existing:
            continue
        have = len(existing[topic.name].partitions)
        warning = None
        if have != topic.partitions:
            warning = f"has {have} partitions, config asks for {topic.partitions} (left unchanged)"
        else:
            warning = _retention_warning(admin, topic, timeout)
        if warning:
            log.warning("topic %s %s", topic.name, warning)
        reports.append(TopicReport(topic.name, False, have, warning))
    return reports


def _wait_visible(admin: AdminClient, names: list[str], timeout: float) -> None:
    """CreateTopics returns before every broker's metadata shows the topic; wait for it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        topics = admin.list_topics(timeout=timeout).topics
        if all(n in topics and topics[n].error is None and topics[n].partitions for n in names):
            return
        time.sleep(0.1)
    raise TimeoutError(f"topics {names} not visible in metadata after {timeout}s")


def _retention_warning(admin: AdminClient, topic: TopicSettings, timeout: float) -> str | None:
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic.name)
    configs = admin.describe_configs([resource])[resource].result(timeout=timeout)
    have = configs.get("retention.ms")
    if have is not None and int(have.value) != topic.retention_ms:
        return f"has retention.ms={have.value}, config asks for {topic.retention_ms} (left unchanged)"
    return None
