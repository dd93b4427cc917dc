"""Dead-letter records: the original record untouched, plus why and where it failed."""

from __future__ import annotations

import time
from dataclasses import dataclass

from schemas.headers import Headers, dict_to_headers, headers_to_dict

DLQ_SCHEMA_VERSION = "1"
PREFIX = "dlq-"
MAX_REASON_CHARS = 500  # a reason quoting a hostile header must not make the dead letter huge


@dataclass(frozen=True, slots=True)
class DeadLetter:
    reason: str
    stage: str
    at_ns: int
    source_topic: str | None = None
    source_partition: int | None = None
    source_offset: int | None = None
    endpoint: str | None = None


def dead_letter_headers(
    original: Headers | None,
    reason: str,
    stage: str,
    source_topic: str | None = None,
    source_partition: int | None = None,
    source_offset: int | None = None,
    endpoint: str | None = None,
) -> list[tuple[str, bytes]]:
    """Original headers first (minus stale dlq- ones), then ours."""
    kept = [(k, v) for k, v in (original or ()) if not k.startswith(PREFIX) and v is not None]
    if len(reason) > MAX_REASON_CHARS:
        reason = reason[: MAX_REASON_CHARS - 1] + "…"
    ours = dict_to_headers(
        {
            "dlq-schema-version": DLQ_SCHEMA_VERSION,
            "dlq-reason": reason,
            "dlq-stage": stage,
            "dlq-at-ns": time.time_ns(),
            "dlq-source-topic": source_topic,
            "dlq-source-partition": source_partition,
            "dlq-source-offset": source_offset,
            "dlq-endpoint": endpoint,
        }
    )
    return [*kept, *ours]


def parse_dead_letter(headers: Headers | None) -> DeadLetter:
    values = headers_to_dict(headers)

    def opt_int(name: str) -> int | None:
        return int(values[name]) if name in values else None

    return DeadLetter(
        reason=values["dlq-reason"],
        stage=values["dlq-stage"],
        at_ns=int(values["dlq-at-ns"]),
        source_topic=values.get("dlq-source-topic"),
        source_partition=opt_int("dlq-source-partition"),
        source_offset=opt_int("dlq-source-offset"),
        endpoint=values.get("dlq-endpoint"),
    )


def original_headers(headers: Headers | None) -> list[tuple[str, bytes]]:
    """The headers as they were before dead-lettering, for replay."""
    return [(k, v) for k, v in (headers or ()) if not k.startswith(PREFIX) and v is not None]
