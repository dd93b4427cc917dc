"""The rules stage's exactly-once bookkeeping, in one object: what was taken, applied and
published since the last commit, and the checkpoint it all goes back to on abort.

- `advance(records)` applies the records not yet applied (offsets above the checkpoint) to the
  in-memory rule state and publishes what they raised; the records are held until the commit.
- `commit()` saves the changed camera states and the applied offsets in one fenced Redis
  transaction and hands back the held records, for the consumer to ack.
- `abort()` drops everything since the last commit: the in-memory state and offsets go back to
  the checkpoint, and the held records are applied to it again before anything else. The engine
  is deterministic, so re-applying raises the same alerts; those the broker already acknowledged
  are not published twice, and no tally counts a record twice.
- `drop()` is the abort of a revocation: the held records go too, since whoever owns the
  partitions next re-reads them from the committed offset.
- `switch(rules, version)` changes the rules between two records, right after a commit; the
  next commit saves the converted cameras with their new version (docs/rules.md).

Rules versions across a crash: before publishing, the owner records per partition which
version the records since the checkpoint went in under (`CheckpointStore.mark`:
`[[last offset, version], ...]`). A successor applies those records under the same versions (it
may have started on a newer one) and only then goes on with its own, so the alerts its
predecessor published are raised again identically and none under another version.

Holding the records instead of seeking the consumer back keeps faust's fetch position alone:
a rewind here is a re-application of records already in memory.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from alerts import metrics
from alerts.checkpoint import CheckpointStore
from alerts.engine import Engine
from alerts.runner import BatchResult, RawRecord, RulesRunner
from alerts.settings import RulesSettings

log = logging.getLogger(__name__)
# Sends a batch's alerts and rejected records; returns once the broker acknowledged them all.
Publish = Callable[[BatchResult], Awaitable[None]]


class RulesProgress:
    def __init__(
        self,
        engine: Engine,
        store: CheckpointStore,
        detections_topic: str,
        pos_topic: str,
        publish: Publish | None = None,
        health_topic: str | None = None,
    ) -> None:
        self.engine = engine
        self.store = store
        self.detections_topic = detections_topic
        self.runner = RulesRunner(
            engine, detections_topic, pos_topic, self._load_camera, self.version_of, health_topic
        )
        self._publish = publish
        # Per topic:partition: the checkpointed offset the in-memory state started from (or was
        # last saved at; saves and camera loads are fenced on it), and the last applied.
        self._committed: dict[str, int] = {}
        self._applied: dict[str, int] = {}
        self._loaded: set[str] = set()  # cameras whose checkpointed state is in the engine
        self._dirty: set[str] = set()  # cameras changed since the last commit
        self._held: list[RawRecord] = []  # taken since the last commit, in order
        self._published: dict[str, int] = {}  # partition -> last offset whose output is out
        self._rewound = False  # state dropped by abort(): the held records go in again first
        self._switch_point: str | None = None  # where the rules in force took over
        # Per detections partition, [[last offset, version], ...] since the checkpoint: what the
        # previous owner published under (`_zones`, read-only) and what this one applied under.
        self._zones: dict[str, list[list[int]]] = {}
        self._segments: dict[str, list[list[int]]] = {}
        self._marked: dict[str, list[list[int]]] = {}
        self.committed_at = time.monotonic()

    @property
    def pending(self) -> bool:
        """Records taken since the last commit (so a commit has something to do)."""
        return bool(self._held)

    def version_of(self, raw: RawRecord) -> int:
        """The version a record goes in under: its predecessor's, else the one in force."""
        for end, version in self._zones.get(raw.tp, ()):
            if raw.offset <= end:
                return version
        return self.engine.version

    @property
    def replaying(self) -> bool:
        """Records a predecessor published are still to be re-applied (no switch meanwhile)."""
        return any(zone and self._applied.get(tp, -1) < zone[-1][0] for tp, zone in self._zones.items())

    def _note(self, raw: RawRecord) -> None:
        zone = self._zones.get(raw.tp, [])
        if zone and raw.offset == zone[-1][0] + 1 and zone[-1][1] != self.engine.version:
            log.warning(
                "rules: %s re-applied up to offset %d under version %d, as its previous owner "
                "published them; version %d from %s:%d on",
                raw.tp, zone[-1][0], zone[-1][1], self.engine.version, raw.tp, raw.offset,
            )  # fmt: skip
        version = self.version_of(raw)
        segments = self._segments.setdefault(raw.tp, [])
        if segments and segments[-1][1] == version:
            segments[-1][0] = raw.offset
        else:
            segments.append([raw.offset, version])

    def _marks(self) -> dict[str, list[list[int]]]:
        """Per partition: the predecessor's marks, then this owner's beyond them."""
        out = {}
        for tp, mine in self._segments.items():
            zone = self._zones.get(tp, [])
            end = zone[-1][0] if zone else -1
            marks = zone + [s for s in mine if s[0] > end]
            if marks != self._marked.get(tp):
                out[tp] = [list(m) for m in marks]
        return out

    def position(self) -> str:
        """The next record of every partition applied so far, as `topic:partition:offset`."""
        return ",".join(f"{tp}:{off + 1}" for tp, off in sorted(self._applied.items())) or "start"

    def switch(self, rules: RulesSettings, version: int) -> list[str]:
        """Apply `rules` (labelled `version`) from the next record on; returns the cameras in
        memory it converted. Call it right after a commit and commit again before publishing
        anything, so that the checkpoint records the version at the same point; not while
        `replaying`."""
        if self._held or self._rewound or self.replaying:
            raise RuntimeError("switch rules only right after a commit, and not while replaying")
        point = self._switch_point = self.position()
        converted = self.engine.switch(rules, version)
        for camera_id in converted:
            self.engine.cameras[camera_id].since = point
        self._dirty |= set(converted)
        return converted

    def commit_due(self, interval_s: float) -> bool:
        return time.monotonic() - self.committed_at >= interval_s

    async def advance(self, records: list[RawRecord]) -> BatchResult:
        """Apply `records` after the held ones if aborted, publish, and hold them.

        Raises what loading, publishing or a fenced load raise; then `abort()` and call again.
        """
        todo = (self._held if self._rewound else []) + records
        fresh, replayed = await self._fresh(todo)
        for raw in fresh:
            if raw.topic == self.detections_topic:
                self._note(raw)
        result = await self.runner.process(fresh)
        result.replayed = replayed
        self._dirty |= result.touched
        if self._publish is not None:
            out = self._unpublished(result)
            if out.alerts or out.rejected:
                marks = self._marks()
                await self.store.mark(marks)
                self._marked.update(marks)
            await self._publish(out)
        for raw in todo:
            self._published[raw.tp] = max(raw.offset, self._published.get(raw.tp, -1))
        self._held += records
        self._rewound = False
        return result

    async def _fresh(self, records: list[RawRecord]) -> tuple[list[RawRecord], int]:
        """Records above the applied offset of their partition; counts the others."""
        fresh: list[RawRecord] = []
        for raw in records:
            if raw.tp not in self._applied:
                self._applied[raw.tp] = self._committed[raw.tp] = await self.store.offset(raw.tp)
                if raw.topic == self.detections_topic:
                    committed = self._committed[raw.tp]
                    self._zones[raw.tp] = [m for m in await self.store.marks(raw.tp) if m[0] > committed]
            if raw.offset <= self._applied[raw.tp]:
                metrics.SKIPPED.labels("already applied").inc()  # in the checkpoint already
                continue
            self._applied[raw.tp] = raw.offset
            fresh.append(raw)
        return fresh, len(records) - len(fresh)

    async def _load_camera(self, camera_id: str, version: int) -> None:
        if camera_id in self._loaded:
            return
        snapshot = await self.store.camera(camera_id, expected=self._committed)
        if snapshot is not None:
            camera = self.engine.camera(camera_id, version)
            try:
                camera.restore(snapshot)
            except (KeyError, ValueError) as exc:
                log.error("state of camera %s unusable (%s); starting it afresh", camera_id, exc)
            if snapshot.get("rules_version", 0) != camera.version:  # converted: saved as such
                camera.since = self._switch_point or self.position()
                self._dirty.add(camera_id)
        self._loaded.add(camera_id)

    def _unpublished(self, result: BatchResult) -> BatchResult:
        def new(raw: RawRecord) -> bool:
            return raw.offset > self._published.get(raw.tp, -1)

        kept = [(a, o) for a, o in zip(result.alerts, result.origins, strict=True) if new(o)]
        return BatchResult(
            alerts=[a for a, _ in kept],
            origins=[o for _, o in kept],
            rejected=[(raw, why) for raw, why in result.rejected if new(raw)],
            applied=result.applied,
            replayed=result.replayed,
        )

    async def commit(self) -> list[RawRecord]:
        """Checkpoint what was applied (after its alerts are out); the held records to ack.

        Raises `CheckpointFenced` (nothing saved) when another owner checkpointed one of these
        partitions since this one loaded it; then `abort()`: the state is re-read from Redis.
        """
        if self._rewound:
            await self.advance([])
        moved = {tp: off for tp, off in self._applied.items() if off != self._committed.get(tp)}
        if self._dirty or moved:
            started = time.perf_counter()
            states = {cam: self.engine.cameras[cam].snapshot() for cam in sorted(self._dirty)}
            await self.store.save(states, moved, expected=self._committed)
            self._committed.update(moved)
            self._dirty.clear()
            for tp, offset in moved.items():
                for marks in (self._zones, self._segments):
                    if tp in marks:
                        marks[tp] = [m for m in marks[tp] if m[0] > offset]
            metrics.CHECKPOINT.observe(time.perf_counter() - started)
        done, self._held = self._held, []
        self._published.clear()
        self.committed_at = time.monotonic()
        return done

    def abort(self) -> None:
        """Back to the last checkpoint; the held records are applied again before anything new."""
        self._forget()
        self._rewound = True

    def drop(self) -> None:
        """The partitions were revoked: forget everything, the next owner re-reads them."""
        self._forget()
        self._held = []
        self._published.clear()
        self._rewound = False

    def _forget(self) -> None:
        self.engine.cameras.clear()
        self._committed.clear()
        self._applied.clear()
        self._loaded.clear()
        self._dirty.clear()
        self._zones.clear()
        self._segments.clear()
        self._marked.clear()
