"""streams.topic_reader against the real broker: bounded reads that end where the topic ended
when the read began, across transaction markers and aborted records, with clear errors."""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer

from streams.kafka import consumer_config, make_producer, transactional_producer_config
from streams.topic_reader import TopicMissing, TopicReadError, read_topic, spans
from tests.conftest import Stack


def _consumer(stack: Stack, eof: bool = False) -> Consumer:
    conf = consumer_config(stack.config.kafka, f"test-topic-reader-{uuid.uuid4().hex}")
    return Consumer({**conf, "enable.partition.eof": eof})


def _values(messages: object) -> list[bytes]:
    return [m.value() for m in messages]  # type: ignore[attr-defined]


@pytest.mark.parametrize("eof", [False, True])
def test_reads_committed_records_to_the_end_seen_at_the_start(stack: Stack, eof: bool) -> None:
    config = stack.fresh_config("reader", partitions=2)
    topic = config.topics.detections.name
    producer = Producer(transactional_producer_config(config.kafka, "t", f"reader-{uuid.uuid4().hex}"))
    producer.init_transactions(30)
    for batch, commit in ((b"a", True), (b"b", False)):  # the topic ends in an abort marker
        producer.begin_transaction()
        for i in range(3):
            producer.produce(topic, value=batch + str(i).encode(), partition=i % 2)
        producer.commit_transaction(30) if commit else producer.abort_transaction(30)
    consumer = _consumer(stack, eof)
    try:
        started = time.monotonic()
        records = read_topic(consumer, topic, timeout_s=5)
        late = make_producer(config.kafka)
        late.produce(topic, value=b"late", partition=0)
        late.flush(10)
        got = list(records)
        assert time.monotonic() - started < 5, "ends at the markers, not by waiting for a record"
    finally:
        consumer.close()
    assert [(m.partition(), m.value()) for m in got] == [(0, b"a0"), (0, b"a2"), (1, b"a1")]


def test_slices_by_partition_and_offsets_and_names_what_is_missing(stack: Stack) -> None:
    config = stack.fresh_config("reader-slice", partitions=2)
    topic = config.topics.detections.name
    producer = make_producer(config.kafka)
    for i in range(6):
        producer.produce(topic, value=str(i).encode(), partition=0)
    producer.flush(10)
    consumer = _consumer(stack)
    try:
        assert _values(read_topic(consumer, topic, partitions=[0], start=2, end=4)) == [b"2", b"3"]
        assert _values(read_topic(consumer, topic, start={0: 4, 1: -1001})) == [b"4", b"5"]
        assert [(s.partition, s.start, s.end) for s in spans(consumer, topic)] == [(0, 0, 6), (1, 0, 0)]
        with pytest.raises(TopicReadError, match="has no partition 7"):
            read_topic(consumer, topic, partitions=[7])
        with pytest.raises(TopicMissing, match="does not exist"):
            read_topic(consumer, f"no-such-{uuid.uuid4().hex}")
    finally:
        consumer.close()
