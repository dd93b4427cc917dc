"""Publishing rejected records to the dead-letter topic, keeping the original intact."""

from __future__ import annotations

import logging

from confluent_kafka import Message, Producer

from schemas.dead_letter import dead_letter_headers

log = logging.getLogger(__name__)


def send_to_dead_letter(
    producer: Producer,
    topic: str,
    reason: str,
    stage: str,
    *,
    original: Message | None = None,
    key: bytes | None = None,
    value: bytes | None = None,
    headers: list[tuple[str, bytes]] | None = None,
) -> None:
    """Queue a dead-letter record; the caller flushes or commits as its guarantees need."""
    if original is not None:
        key, value, headers = original.key(), original.value(), original.headers()
        source = {
            "source_topic": original.topic(),
            "source_partition": original.partition(),
            "source_offset": original.offset(),
        }
    else:
        source = {}
    log.warning("dead-lettering record (key=%r): %s", key, reason)
    producer.produce(
        topic, key=key, value=value, headers=dead_letter_headers(headers, reason, stage, **source)
    )
