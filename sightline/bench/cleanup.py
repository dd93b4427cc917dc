"""Benchmarks leave nothing on the broker: their topics and consumer groups are deleted when they
end, failed or not, so neither the next run nor the demo (nor a disk) keeps them."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from sightline.config import KafkaSettings, SightlineConfig
from streams.kafka import make_admin

log = logging.getLogger(__name__)

# A group whose members just closed may still count them until the broker notices they left;
# a killed member counts until its session times out (10 s, streams.kafka.consumer_config).
NON_EMPTY_RETRY_S = 15.0


@dataclass
class Created:
    """What a benchmark made on the broker. `prefixes` catch what its stages name themselves
    (faust's `<app_id>-__assignor-__leader` topic and its consumer group `<app_id>`)."""

    topics: set[str] = field(default_factory=set)
    groups: set[str] = field(default_factory=set)
    prefixes: set[str] = field(default_factory=set)

    def track(self, config: SightlineConfig) -> SightlineConfig:
        """Remember every topic of `config` and its inference consumer group; returns `config`."""
        self.topics.update(topic.name for _, topic in config.topics)
        self.groups.add(config.inference.group_id)
        return config


def _code(exc: BaseException) -> int | None:
    if isinstance(exc, KafkaException) and isinstance(exc.args[0], KafkaError):
        return int(exc.args[0].code())
    return None


def _delete_topics(admin: AdminClient, created: Created, timeout_s: float) -> list[str]:
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    names = sorted(n for n in existing if n in created.topics or n.startswith(tuple(created.prefixes)))
    if not names:
        return []
    problems = []
    for name, future in admin.delete_topics(names, operation_timeout=timeout_s).items():
        try:
            future.result()
        except KafkaException as exc:
            if _code(exc) != KafkaError.UNKNOWN_TOPIC_OR_PART:
                problems.append(f"topic {name}: {exc}")
    return problems


def _delete_groups(admin: AdminClient, created: Created, timeout_s: float) -> list[str]:
    listed = admin.list_consumer_groups(request_timeout=timeout_s).result()
    names = {g.group_id for g in listed.valid if g.group_id.startswith(tuple(created.prefixes))}
    pending = sorted(names | created.groups)
    problems: dict[str, str] = {}
    deadline = time.monotonic() + NON_EMPTY_RETRY_S
    while pending:
        retry = []
        for name, future in admin.delete_consumer_groups(pending, request_timeout=timeout_s).items():
            try:
                future.result()
                problems.pop(name, None)
            except KafkaException as exc:
                code = _code(exc)
                if code == KafkaError.GROUP_ID_NOT_FOUND:  # never committed, so never made
                    problems.pop(name, None)
                elif code == KafkaError.NON_EMPTY_GROUP and time.monotonic() < deadline:
                    retry.append(name)
                else:
                    problems[name] = f"group {name}: {exc}"
        pending = retry
        if pending:
            time.sleep(1.0)
    return list(problems.values())


def delete_created(kafka: KafkaSettings, created: Created, timeout_s: float = 30.0) -> list[str]:
    """Delete the topics and groups in `created` (missing ones are fine); the problems, if any."""
    admin = make_admin(kafka)
    try:
        return _delete_topics(admin, created, timeout_s) + _delete_groups(admin, created, timeout_s)
    except KafkaException as exc:  # broker gone: nothing more to delete now
        return [f"cleanup: {exc}"]


@contextmanager
def removed_after(kafka: KafkaSettings) -> Iterator[Created]:
    """Track topics and groups in the body; delete them at the end, also when the body raised.
    Problems are logged, never raised: they must not hide the benchmark's own error."""
    created = Created()
    try:
        yield created
    finally:
        for problem in delete_created(kafka, created):
            log.warning("benchmark cleanup: %s", problem)
