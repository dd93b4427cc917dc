"""`sightline alerts test-rules`: run a rules file over recorded detections, offline.

Input is a JSONL file of DetectionsRecord values or a topic range (`topic:partition:a-b`);
optional POS events (JSONL) are merged in by time. The engine is the one the live app runs,
with alert times taken from capture times, so the same input always gives the same alerts.

Rules can switch mid-input (`Switch`): at the first record at or past a position, as the live
processors switch to a newly saved version between two records (docs/rules.md).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import Consumer

from alerts.engine import Engine
from alerts.pos import PosEvent
from alerts.settings import RulesSettings
from schemas.alert import AlertRecord
from schemas.camera_health import CameraHealth
from schemas.detections import DetectionsRecord
from schemas.errors import ContractError
from streams import topic_reader
from streams.kafka import consumer_config
from streams.settings import KafkaSettings

RANGE = re.compile(r"^(?P<topic>[A-Za-z0-9._-]+)(?::(?P<partition>\d+)(?::(?P<start>\d+)-(?P<end>\d*))?)?$")


@dataclass(frozen=True)
class Located:
    """A record and where it was read: topic partition and offset, or (files) partition 0 and
    the record's index among the file's non-empty lines."""

    record: DetectionsRecord
    partition: int
    offset: int


@dataclass(frozen=True)
class Switch:
    """From the first record of `partition` (None: any) at or past `offset` on, `rules` apply,
    labelled `version` in the alerts."""

    rules: RulesSettings
    version: int
    offset: int
    partition: int | None = None

    def due(self, where: Located) -> bool:
        return (self.partition is None or self.partition == where.partition) and where.offset >= self.offset


POINT = re.compile(r"^(?:(?P<partition>\d+):)?(?P<offset>\d+)$")


def parse_point(text: str) -> tuple[int | None, int]:
    """`OFFSET` or `PARTITION:OFFSET` (a switch point), as (partition, offset)."""
    m = POINT.match(text)
    if m is None:
        raise ValueError(f"{text!r} is not a switch point like 1200 or 0:1200")
    return (int(m["partition"]) if m["partition"] is not None else None), int(m["offset"])


@dataclass(frozen=True)
class TopicRange:
    """`topic`, `topic:P`, `topic:P:A-B` (A..B inclusive) or `topic:P:A-` (A to current end)."""

    topic: str
    partition: int | None = None
    start: int | None = None
    end: int | None = None

    @classmethod
    def parse(cls, text: str) -> TopicRange:
        m = RANGE.match(text)
        if m is None:
            raise ValueError(
                f"{text!r} is neither a file nor a topic range like sightline.detections:0:100-500"
            )
        start = int(m["start"]) if m["start"] is not None else None
        end = int(m["end"]) if m["end"] else None
        if start is not None and end is not None and end < start:
            raise ValueError(f"empty offset range {start}-{end}")
        partition = int(m["partition"]) if m["partition"] is not None else None
        return cls(m["topic"], partition, start, end)


def read_jsonl(path: Path, errors: list[str]) -> Iterator[DetectionsRecord]:
    return (where.record for where in read_jsonl_located(path, errors))


def read_jsonl_located(path: Path, errors: list[str]) -> Iterator[Located]:
    index = 0
    with path.open("rb") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            index += 1
            try:
                yield Located(DetectionsRecord.decode(line), 0, index - 1)
            except ContractError as exc:
                errors.append(f"{path}:{n}: {exc.reason}")


def read_topic(kafka: KafkaSettings, rng: TopicRange, errors: list[str]) -> Iterator[DetectionsRecord]:
    return (where.record for where in read_topic_located(kafka, rng, errors))


def read_topic_located(kafka: KafkaSettings, rng: TopicRange, errors: list[str]) -> Iterator[Located]:
    """Partition by partition, in offset order: per camera that is the order the app saw.

    Committed records only (read_committed, as the live app reads): an aborted exactly-once batch
    is not replayed.
    """
    config = consumer_config(kafka, "sightline-test-rules", "sightline-test-rules", read_committed=True)
    consumer = Consumer({**config, "enable.partition.eof": True})
    partitions = None if rng.partition is None else [rng.partition]
    end = None if rng.end is None else rng.end + 1
    try:
        for msg in topic_reader.read_topic(
            consumer, rng.topic, partitions=partitions, start=rng.start, end=end, timeout_s=5.0
        ):
            try:
                yield Located(DetectionsRecord.decode(msg.value() or b""), msg.partition(), msg.offset())
            except ContractError as exc:
                errors.append(f"{rng.topic}:{msg.partition()}:{msg.offset()}: {exc.reason}")
    except topic_reader.TopicReadError as exc:
        raise ValueError(str(exc)) from None  # the command reports bad input as ValueError
    finally:
        consumer.close()


def read_pos(path: Path) -> list[PosEvent]:
    events = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                events.append(PosEvent.model_validate_json(line))
            except ValueError as exc:
                raise ValueError(f"{path}:{n}: invalid POS event: {exc}") from None
    return sorted(events, key=lambda e: e.at_ns)


def evaluate(
    rules: RulesSettings,
    records: Iterable[DetectionsRecord | Located],
    pos: list[PosEvent] | None = None,
    flush: bool = True,
    *,
    version: int = 0,
    switches: Iterable[Switch] = (),
    health: list[CameraHealth] | None = None,
) -> list[AlertRecord]:
    """Records in their given order; each POS event goes in before the first later record, and
    so do camera-health records (`health`, in their given order).

    `version` labels the alerts of `rules`. With `switches` (records must then be `Located`), a
    record goes in under the last switch due at its position, its camera converted as the
    processors convert it; so each partition switches at its own point, as live.
    """
    todo = list(switches)
    versions = {version: rules, **{s.version: s.rules for s in todo}}
    engine = Engine(rules, version, versions.__getitem__)
    adopted = -1  # the newest switch reached anywhere: POS routing and new cameras follow it
    last: dict[int, Located] = {}  # per partition, the last record read
    partition_of: dict[str, int] = {}
    pending = list(pos or [])
    healths = list(health or [])
    alerts: list[AlertRecord] = []
    i = h = 0
    for item in records:
        want: int | None = None
        if isinstance(item, Located):
            record = item.record
            k = _due(todo, item)
            if k > adopted:
                engine.adopt(todo[k].rules, todo[k].version)
                adopted = k
            want = version if k < 0 else todo[k].version
            last[item.partition] = item
            partition_of[record.camera_id] = item.partition
        elif todo:
            raise ValueError("switch points need records with their positions (Located)")
        else:
            record = item
        while i < len(pending) and pending[i].at_ns <= record.capture_ns:
            alerts += engine.on_pos(pending[i])
            i += 1
        while h < len(healths) and healths[h].at_ns <= record.capture_ns:
            alerts += engine.on_health(healths[h])
            h += 1
        alerts += engine.on_record(record, want)
    for event in pending[i:]:
        alerts += engine.on_pos(event)
    for rest in healths[h:]:
        alerts += engine.on_health(rest)
    if flush:
        for camera_id, partition in sorted(partition_of.items()):  # switched since its last record
            k = _due(todo, last[partition])
            if camera_id not in engine.cameras or k < 0:
                continue
            if camera_id in engine.rules_at(todo[k].version):
                engine.at_version(camera_id, todo[k].version)
            else:  # no rules for it any more: dropped, as the processors drop it
                del engine.cameras[camera_id]
        alerts += engine.flush()
    return alerts


def _due(switches: list[Switch], where: Located) -> int:
    """Index of the last switch due at `where`, -1 when none is."""
    return max((k for k, s in enumerate(switches) if s.due(where)), default=-1)


def open_source(source: str, kafka: KafkaSettings, errors: list[str]) -> Iterator[Located]:
    path = Path(source)
    if path.is_file():
        return read_jsonl_located(path, errors)
    if path.suffix in (".jsonl", ".json") or "/" in source:
        raise ValueError(f"file {source} does not exist")
    return read_topic_located(kafka, TopicRange.parse(source), errors)


def print_alerts(alerts: list[AlertRecord], out: object = None) -> None:
    stream = out or sys.stdout
    for alert in alerts:
        stream.write(alert.model_dump_json() + "\n")  # type: ignore[attr-defined]
