"""Where a restarted camera carries on: the last frame it has on the frames topic.

The topic, not local state, is the record of what Kafka acknowledged, so this holds even after
a kill -9 with frames still in flight. Frame records are keyed by camera id, so one camera's
frames share one partition: the tail of that partition is read backwards, a window at a time,
for the camera's last record (its `seq`, and for files its `stream_ts`). Windows start small
and grow, because after a restart that record is usually among the newest few: a restart then
reads a handful of frames instead of hundreds (each frame is tens of kilobytes of JPEG).
"""

from __future__ import annotations

import logging
import time
import uuid
import zlib

from confluent_kafka import Consumer, TopicPartition

from schemas.errors import ContractError
from schemas.frame import FrameMeta, parse_frame_headers
from streams.kafka import consumer_config
from streams.settings import StreamsConfig

log = logging.getLogger(__name__)

WINDOW = 16  # records read by the first step backwards; each further step reads 4 times more
GROWTH = 4
LOOKBACK = 2_000  # records of the partition searched at most before giving up
BATCH = 500  # records taken from the client per consume() call
POLL_S = 0.1  # one consume() wait; the whole search is bounded by `timeout`


def key_partition(key: bytes, partitions: int) -> int:
    """The partition of a keyed record under librdkafka's default partitioner (consistent_random)."""
    return zlib.crc32(key) % partitions


def find_last_frame(
    config: StreamsConfig,
    camera_id: str,
    *,
    window: int = WINDOW,
    lookback: int = LOOKBACK,
    timeout: float = 30.0,
) -> FrameMeta | None:
    """The camera's last frame record on the frames topic, or None when it has none there.

    Raises KafkaException or TimeoutError while the broker is unreachable (callers retry).
    """
    topic = config.topics.frames.name
    key = camera_id.encode()
    settings = consumer_config(
        config.kafka, f"sightline-decoder-resume-{uuid.uuid4().hex[:12]}", read_committed=False
    )
    # One partition is read: its share of a fetch may be the whole fetch (1 MB is ~13 frames,
    # a broker round trip each).
    settings["max.partition.fetch.bytes"] = settings["fetch.max.bytes"]
    # The first window ends at the partition's end, where the broker parks a fetch for new
    # records up to fetch.wait.max.ms (500 ms): the next window's fetch queued behind it.
    settings["fetch.wait.max.ms"] = 10
    consumer = Consumer(settings)
    deadline = time.monotonic() + timeout
    try:
        metadata = consumer.list_topics(topic, timeout=timeout).topics[topic]
        if metadata.error is not None or not metadata.partitions:
            return None  # no frames topic yet: nothing was ever published
        count = len(metadata.partitions)
        if config.kafka.extra.get("partitioner", "consistent_random") in ("consistent_random", "consistent"):
            candidates = [key_partition(key, count)]
        else:  # a custom partitioner: the camera's frames may be in any partition
            candidates = sorted(metadata.partitions)
        found = [_last_in_partition(consumer, topic, p, key, window, lookback, deadline) for p in candidates]
        metas = [m for m in found if m is not None]
        return max(metas, key=lambda m: m.seq) if metas else None
    finally:
        consumer.close()


def _last_in_partition(
    consumer: Consumer, topic: str, partition: int, key: bytes, window: int, lookback: int, deadline: float
) -> FrameMeta | None:
    low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
    floor = max(low, high - lookback)
    end = high
    while end > floor:
        start = max(floor, end - window)
        last = _last_in_range(consumer, topic, partition, start, end, key, deadline)
        if last is not None:
            return last
        end, window = start, window * GROWTH
    if floor > low:
        log.warning(
            "camera %s: none of its frames in the last %d records of %s[%d]; numbering starts at 0 "
            "(had it published before those, its seq numbers repeat)",
            key.decode(), lookback, topic, partition,
        )  # fmt: skip
    return None


def _last_in_range(
    consumer: Consumer, topic: str, partition: int, start: int, end: int, key: bytes, deadline: float
) -> FrameMeta | None:
    """The last valid frame record with `key` among offsets [start, end)."""
    tp = TopicPartition(topic, partition, start)
    consumer.assign([tp])
    position, last = start, None
    while position < end:
        if time.monotonic() > deadline:
            raise TimeoutError(f"reading {topic}[{partition}] offsets {start}..{end} took too long")
        # Never ask for more records than the range has left: consume() would wait out its
        # timeout for records that are not there (it did, 0.5 s per window, on every start).
        for msg in consumer.consume(min(BATCH, end - position), POLL_S):
            if msg.error() is not None or msg.offset() >= end:
                continue
            position = max(position, msg.offset() + 1)
            if msg.key() != key:
                continue
            try:
                last = parse_frame_headers(msg.key(), msg.headers())
            except ContractError:
                continue  # not a frame this decoder wrote; it says nothing about our numbering
        # Offsets of transaction markers (and records deleted by retention) are never returned.
        offset = consumer.position([TopicPartition(topic, partition)])[0].offset
        if offset >= 0:
            position = max(position, offset)
    return last
