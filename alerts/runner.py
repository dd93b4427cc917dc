"""The rules stage without Kafka: raw records in, alerts out, checkpointed in Redis.

The faust agent in `alerts.app` feeds it batches; keeping it free of faust makes the
exactly-once bookkeeping easy to read and to test.

Infrastructure errors (Redis, a fenced checkpoint) are raised, never turned into dead letters:
the caller then `forget()`s and re-applies from the checkpoint. Only records that break their
contract are rejected, and a bug in a rule rejects only the record that triggered it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from pydantic import ValidationError
from redis.exceptions import RedisError

from alerts import metrics
from alerts.checkpoint import CheckpointFenced, CheckpointStore
from alerts.engine import Engine
from alerts.pos import PosEvent
from schemas.alert import AlertRecord
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


@dataclass
class BatchResult:
    alerts: list[AlertRecord] = field(default_factory=list)
    # The record whose arrival raised each alert (same length as `alerts`).
    origins: list[RawRecord] = field(default_factory=list)
    # (record, reason) pairs for the dead-letter topic: records that break their contract.
    rejected: list[tuple[RawRecord, str]] = field(default_factory=list)
    applied: int = 0
    replayed: int = 0


class RulesRunner:
    def __init__(self, engine: Engine, store: CheckpointStore, detections_topic: str, pos_topic: str) -> None:
        self.engine = engine
        self.store = store
        self.detections_topic = detections_topic
        self.pos_topic = pos_topic
        self._offsets: dict[str, int] = {}  # last applied, in memory
        # Checkpointed offset each partition's in-memory state started from (or was last saved
        # at): saves and camera loads are fenced on it.
        self._base: dict[str, int] = {}
        self._loaded: set[str] = set()
        self._dirty: set[str] = set()
        self._pending_offsets: dict[str, int] = {}

    def forget(self) -> None:
        """After a rebalance or a failure: reload state and offsets from Redis on next use."""
        self._offsets.clear()
        self._base.clear()
        self._loaded.clear()
        self.engine.cameras.clear()
        self._dirty.clear()
        self._pending_offsets.clear()

    async def _ensure_camera(self, camera_id: str) -> None:
        if camera_id in self._loaded:
            return
        snapshot = await self.store.camera(camera_id, expected=self._base)
        engine = self.engine.camera(camera_id)
        if snapshot is not None:
            try:
                engine.restore(snapshot)
            except (KeyError, ValueError) as exc:
                log.error("state of camera %s unusable (%s); starting it afresh", camera_id, exc)
        self._loaded.add(camera_id)

    async def process(self, batch: list[RawRecord]) -> BatchResult:
        result = BatchResult()
        for raw in batch:
            tp = f"{raw.topic}:{raw.partition}"
            if tp not in self._offsets:
                self._offsets[tp] = self._base[tp] = await self.store.offset(tp)
            if raw.offset <= self._offsets[tp]:
                result.replayed += 1  # applied before a restart: already in the checkpoint
                metrics.SKIPPED.labels("already applied").inc()
                continue
            self._offsets[tp] = self._pending_offsets[tp] = raw.offset
            try:
                raised = await self._apply(raw)
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
                log.exception("rule engine failed on %s@%d", tp, raw.offset)
                result.rejected.append((raw, f"rule engine error: {type(exc).__name__}: {exc}"))
        for alert in result.alerts:
            metrics.RAISED.labels(alert.type).inc()
        return result

    async def _apply(self, raw: RawRecord) -> list[AlertRecord]:
        if raw.topic == self.detections_topic:
            record = DetectionsRecord.decode(raw.value or b"")
            metrics.DETECTIONS.inc()
            if not self.engine.has_camera(record.camera_id):
                metrics.SKIPPED.labels("no rules for camera").inc()
                return []
            await self._ensure_camera(record.camera_id)
            camera = self.engine.camera(record.camera_id)
            if camera.ctx.seen(record.seq):
                self._duplicate(record, camera.ctx.last_seq)
                return []
            self._dirty.add(record.camera_id)
            return self.engine.on_record(record)
        event = PosEvent.model_validate_json(raw.value or b"")
        target = self.engine.route_pos(event)
        if target is None:
            metrics.SKIPPED.labels("unknown POS register").inc()
            return []
        await self._ensure_camera(target[0])
        self._dirty.add(target[0])
        return self.engine.on_pos(event)

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

    async def checkpoint(self) -> None:
        """Persist what the last batches changed; call only after their alerts are published.

        Raises `CheckpointFenced` (nothing saved) when another owner checkpointed one of this
        runner's partitions since it loaded it; then `forget()` and re-apply.
        """
        if not self._dirty and not self._pending_offsets:
            return
        started = time.perf_counter()
        states = {cam: self.engine.cameras[cam].snapshot() for cam in sorted(self._dirty)}
        await self.store.save(states, self._pending_offsets, expected=self._base)
        self._base.update(self._pending_offsets)
        self._dirty.clear()
        self._pending_offsets = {}
        metrics.CHECKPOINT.observe(time.perf_counter() - started)
