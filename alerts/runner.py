"""Applying records to the rule engine: decoding, routing, duplicate seqs, rejections.

It keeps no offsets and saves nothing: `alerts.progress.RulesProgress` decides which records
are new, loads camera states for it (through `load`) and checkpoints what it changed. Keeping it
free of faust and of the bookkeeping makes both easy to read and to test.

Infrastructure errors (Redis, a fenced checkpoint) are raised, never turned into dead letters:
the caller then aborts and re-applies from the checkpoint. Only records that break their
contract are rejected, and a bug in a rule rejects only the record that triggered it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from pydantic import ValidationError
from redis.exceptions import RedisError

from alerts import metrics
from alerts.checkpoint import CheckpointFenced
from alerts.engine import Engine
from alerts.pos import PosEvent
from schemas.alert import AlertRecord
from schemas.camera_health import CameraHealth
from schemas.detections import DetectionsRecord
from schemas.errors import ContractError

log = logging.getLogger(__name__)
# Errors of what the runner depends on: retried by the caller, never blamed on a record.
INFRA_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError, CheckpointFenced)
# A seq this far below the newest one is no duplicate but a numbering that started over.
SEQ_RESET_WARNING = 10_000


@dataclass(frozen=True, slots=True)
class RawRecord:
    topic: str
    partition: int
    offset: int
    value: bytes | None
    # What the consumer acks once the record is committed (a faust event); None offline.
    handle: object = field(default=None, compare=False, repr=False)

    @property
    def tp(self) -> str:
        return f"{self.topic}:{self.partition}"


@dataclass
class BatchResult:
    alerts: list[AlertRecord] = field(default_factory=list)
    # The record whose arrival raised each alert (same length as `alerts`).
    origins: list[RawRecord] = field(default_factory=list)
    # (record, reason) pairs for the dead-letter topic: records that break their contract.
    rejected: list[tuple[RawRecord, str]] = field(default_factory=list)
    applied: int = 0
    replayed: int = 0
    # Cameras whose state the batch changed: the next checkpoint saves them.
    touched: set[str] = field(default_factory=set)


# Makes a camera's checkpointed state current in the engine, on a rules version, before its
# first record.
CameraLoader = Callable[[str, int], Awaitable[None]]
# The rules version a detections record is applied under (the one in force, unless a
# predecessor published its alerts under another; see `alerts.progress`).
VersionOf = Callable[[RawRecord], int]


class RulesRunner:
    def __init__(
        self,
        engine: Engine,
        detections_topic: str,
        pos_topic: str,
        load: CameraLoader,
        version_of: VersionOf | None = None,
        health_topic: str | None = None,
    ) -> None:
        self.engine = engine
        self.detections_topic = detections_topic
        self.pos_topic = pos_topic
        self.health_topic = health_topic
        self._load = load
        self._version_of = version_of

    async def process(self, batch: list[RawRecord]) -> BatchResult:
        """Apply `batch` (records not applied before, in offset order per partition)."""
        result = BatchResult()
        for raw in batch:
            try:
                raised = await self._apply(raw, result.touched)
                result.alerts += raised
                result.origins += [raw] * len(raised)
                result.applied += 1
            except INFRA_ERRORS:
                raise
            except (ContractError, ValidationError) as exc:
                reason = (
                    exc.reason if isinstance(exc, ContractError) else f"invalid POS event: {exc.errors()[0]}"
                )
                result.rejected.append((raw, reason))
            except Exception as exc:  # a rule bug must not wedge the partition
                log.exception("rule engine failed on %s@%d", raw.tp, raw.offset)
                result.rejected.append((raw, f"rule engine error: {type(exc).__name__}: {exc}"))
        for alert in result.alerts:
            metrics.RAISED.labels(alert.type).inc()
        return result

    async def _apply(self, raw: RawRecord, touched: set[str]) -> list[AlertRecord]:
        if raw.topic == self.detections_topic:
            record = DetectionsRecord.decode(raw.value or b"")
            metrics.DETECTIONS.inc()
            version = self.engine.version if self._version_of is None else self._version_of(raw)
            if not self.engine.has_camera(record.camera_id, version):
                metrics.SKIPPED.labels("no rules for camera").inc()
                return []
            await self._load(record.camera_id, version)
            camera = self.engine.at_version(record.camera_id, version)
            if camera.ctx.seen(record.seq):
                self._duplicate(record, camera.ctx.last_seq)
                return []
            touched.add(record.camera_id)
            return self.engine.on_record(record, version)
        if raw.topic == self.health_topic:
            return await self._health(CameraHealth.decode(raw.value or b""), touched)
        event = PosEvent.model_validate_json(raw.value or b"")
        target = self.engine.route_pos(event)
        if target is None:
            metrics.SKIPPED.labels("unknown POS register").inc()
            return []
        await self._load(target[0], self.engine.version)
        touched.add(target[0])
        return self.engine.on_pos(event)

    async def _health(self, record: CameraHealth, touched: set[str]) -> list[AlertRecord]:
        """Camera health goes to the camera's `camera_health` rules (docs/alerts.md); a camera
        without any is neither loaded nor checkpointed for it."""
        rules = self.engine.rules.get(record.camera_id)
        if rules is None or not rules.camera_health:
            metrics.SKIPPED.labels("no camera health rules").inc()
            return []
        await self._load(record.camera_id, self.engine.version)
        touched.add(record.camera_id)
        return self.engine.on_health(record)

    def _duplicate(self, record: DetectionsRecord, last_seq: int) -> None:
        metrics.SKIPPED.labels("duplicate seq").inc()
        if last_seq - record.seq >= SEQ_RESET_WARNING:
            log.warning(
                "camera %s: seq %d is far below the last applied %d; records are skipped until the "
                "seq passes it (was the camera's numbering restarted?)",
                record.camera_id,
                record.seq,
                last_seq,
            )
