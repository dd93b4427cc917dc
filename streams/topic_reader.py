"""Reading a bounded slice of a topic: from a start to the end offsets seen when the read began.

`alerts test-rules`, `alerts resend-dead-letters`, `frames tail`, the benchmarks' audits and the tests all
read topics this way. One reader, so that all of them stop at the same place, time out the same
way and name the same problem when a topic or partition is missing. confluent-kafka has no such
call (a consumer only follows a topic), hence this module.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from streams.kafka import is_fatal_error

METADATA_TIMEOUT_S = 10.0


class TopicReadError(RuntimeError):
    """The topic or partition does not exist, or the broker stopped handing out records."""


class TopicMissing(TopicReadError):
    """The topic does not exist (yet)."""


@dataclass(frozen=True)
class Span:
    """Offsets `start` (first) to `end` (exclusive) of one partition."""

    partition: int
    start: int
    end: int


def partitions_of(consumer: Consumer, topic: str, timeout_s: float = METADATA_TIMEOUT_S) -> list[int]:
    """The topic's partitions, sorted; a missing topic raises `TopicMissing`."""
    meta = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
    if meta is None or meta.error is not None or not meta.partitions:
        raise TopicMissing(f"topic {topic!r} does not exist")
    return sorted(meta.partitions)


# Errors of a partition whose leader is not known yet (librdkafka does not flag all as retriable).
_LEADERLESS = frozenset({KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE})


def _watermarks(consumer: Consumer, tp: TopicPartition, timeout_s: float) -> tuple[int, int]:
    """`get_watermark_offsets`, retried while the partition has no leader yet (a topic created a
    moment ago, a leader moving): those errors are retriable and pass within the timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return consumer.get_watermark_offsets(tp, timeout=timeout_s)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            retriable = isinstance(error, KafkaError) and error.retriable()
            leaderless = isinstance(error, KafkaError) and error.code() in _LEADERLESS
            if not (retriable or leaderless) or time.monotonic() >= deadline:
                raise
            time.sleep(0.1)


def spans(
    consumer: Consumer,
    topic: str,
    *,
    partitions: Iterable[int] | None = None,
    start: int | Mapping[int, int] | None = None,
    end: int | None = None,
    timeout_s: float = METADATA_TIMEOUT_S,
) -> list[Span]:
    """Per partition (all, or `partitions`): from `start` (one offset for all, or per partition;
    None or negative, such as a group's "no committed offset": the earliest kept record) to `end`
    (exclusive; None: the end offset now), clamped to what the partition holds."""
    known = partitions_of(consumer, topic, timeout_s)
    out = []
    for p in known if partitions is None else partitions:
        if p not in known:
            raise TopicReadError(f"topic {topic!r} has no partition {p}")
        low, high = _watermarks(consumer, TopicPartition(topic, p), timeout_s)
        first = start.get(p) if isinstance(start, Mapping) else start
        first = low if first is None or first < 0 else max(low, first)
        last = high if end is None else min(high, end)
        out.append(Span(p, first, max(first, last)))
    return out


def read_spans(
    consumer: Consumer, topic: str, todo: Iterable[Span], timeout_s: float = 10.0
) -> Iterator[Message]:
    """The records of each span, partition by partition in offset order (per key, the order a
    consumer group sees them).

    A partition ends at a record at or past its end, at its end-of-partition event (consumers
    made with `enable.partition.eof`), or once the consumer's position reaches its end: offsets
    of transaction markers and aborted records are never delivered. No record and no progress
    for `timeout_s` raises `TopicReadError`, as does an error retrying cannot fix.
    """
    for span in todo:
        position = span.start
        if position >= span.end:
            continue
        consumer.assign([TopicPartition(topic, span.partition, span.start)])
        deadline = time.monotonic() + timeout_s
        last_error: KafkaError | None = None
        while position < span.end:
            msg = consumer.poll(max(0.0, min(0.5, deadline - time.monotonic())))
            if msg is None:
                [now] = consumer.position([TopicPartition(topic, span.partition)])
                if now.offset > position:
                    position, deadline = now.offset, time.monotonic() + timeout_s
                elif time.monotonic() >= deadline:
                    why = f" (last error: {last_error.str()})" if last_error is not None else ""
                    where = f"{topic}:{span.partition} after offset {position}"
                    raise TopicReadError(f"no record of {where} within {timeout_s:g} s{why}")
                continue
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    break
                if is_fatal_error(err):
                    raise TopicReadError(f"reading {topic}:{span.partition}: {err.str()}")
                last_error = err
                continue
            offset = msg.offset() or 0
            if offset >= span.end:
                break
            yield msg
            position, deadline = offset + 1, time.monotonic() + timeout_s


def read_topic(
    consumer: Consumer,
    topic: str,
    *,
    partitions: Iterable[int] | None = None,
    start: int | Mapping[int, int] | None = None,
    end: int | None = None,
    timeout_s: float = 10.0,
) -> Iterator[Message]:
    """`read_spans` over `spans(...)`, whose end offsets are taken now, not when iterating."""
    return read_spans(
        consumer, topic, spans(consumer, topic, partitions=partitions, start=start, end=end), timeout_s
    )
