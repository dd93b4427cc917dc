"""Camera-health records for `sightline alerts test-rules --health`: a JSONL file or a topic range.

Kept in their order (file lines; partition by partition, offset order): the camera_health rule
runs on its own clock, so how they interleave with detections changes nothing, but their order
per camera is the order the live processors read them in.
"""

from __future__ import annotations

from pathlib import Path

from confluent_kafka import Consumer

from alerts.replay_rules import TopicRange
from schemas.camera_health import CameraHealth
from schemas.errors import ContractError
from streams import topic_reader
from streams.kafka import consumer_config
from streams.settings import KafkaSettings


def read_health(source: str, kafka: KafkaSettings, errors: list[str]) -> list[CameraHealth]:
    """Records from `source`; those that break the contract are listed in `errors` and skipped."""
    path = Path(source)
    if path.is_file():
        out = []
        for n, line in enumerate(path.read_bytes().splitlines(), 1):
            if line.strip():
                try:
                    out.append(CameraHealth.decode(line))
                except ContractError as exc:
                    errors.append(f"{path}:{n}: {exc.reason}")
        return out
    if path.suffix in (".jsonl", ".json") or "/" in source:
        raise ValueError(f"file {source} does not exist")
    rng = TopicRange.parse(source)
    config = consumer_config(kafka, "sightline-test-rules", "sightline-test-rules", read_committed=True)
    consumer = Consumer({**config, "enable.partition.eof": True})
    out = []
    try:
        partitions = None if rng.partition is None else [rng.partition]
        end = None if rng.end is None else rng.end + 1
        for msg in topic_reader.read_topic(
            consumer, rng.topic, partitions=partitions, start=rng.start, end=end, timeout_s=5.0
        ):
            try:
                out.append(CameraHealth.decode(msg.value() or b""))
            except ContractError as exc:
                errors.append(f"{rng.topic}:{msg.partition()}:{msg.offset()}: {exc.reason}")
    except topic_reader.TopicReadError as exc:
        raise ValueError(str(exc)) from None
    finally:
        consumer.close()
    return out
