"""The rule engine: detections records and POS events in, alert records out.

Pure and deterministic: no clocks, no I/O, JSON-only state. The faust app wraps it with
Kafka and Redis checkpoints; `sightline alerts test-rules` feeds it recorded records. Same input, same
order, same alerts (ids included).

Rules can change between two records (`Engine.switch`, a new saved version): each rule's state
is kept when its settings (and its camera's) are unchanged, and starts fresh otherwise. That is
decided by a digest of each rule's settings stored with the state, so a checkpoint written under
an older version is converted the same way when it is loaded (docs/rules.md).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from typing import Any

from alerts.frame import Frame
from alerts.geometry import anchor_points
from alerts.pos import PosEvent
from alerts.rules import (
    AnomalyEvaluator,
    CameraContext,
    CameraHealthEvaluator,
    DefectEvaluator,
    Evaluator,
    LaneEvaluator,
    ThresholdEvaluator,
)
from alerts.settings import CameraRules, RulesSettings
from schemas.alert import AlertRecord
from schemas.camera_health import CameraHealth
from schemas.detections import DetectionsRecord

log = logging.getLogger(__name__)
STATE_VERSION = 1


def rule_digests(rules: CameraRules) -> dict[str, str]:
    """Per rule, a digest of its settings and of the camera's (anchor, lateness, track TTL):
    a rule whose digest changed starts with fresh state after a switch."""
    camera = rules.model_dump(mode="json", include={"anchor", "lateness_s", "track_ttl_s"})
    out: dict[str, str] = {}
    for kind in ("lanes", "defects", "anomalies", "thresholds", "camera_health"):
        for rule in getattr(rules, kind):
            text = json.dumps([kind, camera, rule.model_dump(mode="json")], sort_keys=True)
            out[rule.name] = hashlib.sha256(text.encode()).hexdigest()[:16]
    return out


class CameraEngine:
    """All rules of one camera, sharing one event-time clock."""

    def __init__(self, rules: CameraRules, version: int = 0) -> None:
        self.rules = rules
        self.version = version
        self.digests = rule_digests(rules)
        # Where this camera started on `version` ("topic:partition:offset"), for operators.
        self.since: str | None = None
        self.ctx = CameraContext(rules.camera, rules.lateness_s, rules.track_ttl_s, rules.anchor)
        self.ctx.rules_version = version
        self.evaluators: list[Evaluator] = [
            *(LaneEvaluator(c, self.ctx) for c in rules.lanes),
            *(DefectEvaluator(c, self.ctx) for c in rules.defects),
            *(AnomalyEvaluator(c, self.ctx) for c in rules.anomalies),
            *(ThresholdEvaluator(c, self.ctx) for c in rules.thresholds),
            *(CameraHealthEvaluator(c, self.ctx) for c in rules.camera_health),
        ]
        self.lanes = {e.name: e for e in self.evaluators if isinstance(e, LaneEvaluator)}
        self.health = [e for e in self.evaluators if isinstance(e, CameraHealthEvaluator)]

    def on_frame(self, frame: Frame) -> list[AlertRecord]:
        """Apply one record; a `seq` already applied (a duplicate) changes nothing.

        A skipped frame (the worker did not run the model on it) is not seen, which is not seen
        empty: its seq counts as applied and it moves event time, but no rule gets its (absent)
        boxes; rules timing a continuous observation end it (`Evaluator.on_gap`).
        """
        if self.ctx.seen(frame.seq):
            return []
        self.ctx.last_seq = frame.seq
        self.ctx.observe(frame.capture_ns, seen=not frame.skipped)
        alerts: list[AlertRecord] = []
        if frame.skipped:
            for ev in self.evaluators:
                ev.on_gap(frame.capture_ns)
        else:
            points = anchor_points(frame.xyxy, self.ctx.anchor)
            for ev in self.evaluators:
                alerts += ev.on_frame(frame, points)
        sweep = self.ctx.sweep_due()
        for ev in self.evaluators:
            alerts += ev.on_time(sweep)
        return alerts

    def on_pos(self, lane: str, event: PosEvent) -> list[AlertRecord]:
        return self.lanes[lane].on_pos(event)

    def on_health(self, record: CameraHealth) -> list[AlertRecord]:
        """A camera-health record: only the camera_health rules see it, on their own clock."""
        alerts: list[AlertRecord] = []
        for ev in self.health:
            alerts += ev.on_health(record)
        return alerts

    def flush(self) -> list[AlertRecord]:
        alerts: list[AlertRecord] = []
        for ev in self.evaluators:
            alerts += ev.flush()
        return alerts

    def snapshot(self) -> dict[str, Any]:
        return {
            "v": STATE_VERSION,
            "clock": self.ctx.state(),
            "rules": {ev.name: ev.state for ev in self.evaluators},
            "rules_version": self.version,
            "digests": self.digests,
            "since": self.since,
        }

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Load a checkpoint, possibly written under other rules: the clock is kept, and each
        rule's state only if its digest is unchanged; new or changed rules start empty, removed
        rules are dropped. (A checkpoint from before digests were kept restores by name.)"""
        if snapshot.get("v") != STATE_VERSION:
            raise ValueError(f"unsupported state version {snapshot.get('v')!r}")
        self.ctx.load(snapshot["clock"])
        digests = snapshot.get("digests")
        for ev in self.evaluators:
            if ev.name not in snapshot["rules"]:
                continue
            if digests is None or digests.get(ev.name) == self.digests[ev.name]:
                ev.state = snapshot["rules"][ev.name]
        if snapshot.get("rules_version") == self.version:
            self.since = snapshot.get("since")

    def switched(self, rules: CameraRules, version: int) -> CameraEngine:
        """This camera's engine under other rules, keeping the state of unchanged rules."""
        engine = CameraEngine(rules, version)
        engine.restore(self.snapshot())
        return engine


class Engine:
    """Routes records to their camera's rules; cameras without rules are ignored.

    `version` is the saved rules version in force (0: the rules file); every alert carries it.
    """

    def __init__(
        self, rules: RulesSettings, version: int = 0, resolve: Callable[[int], RulesSettings] | None = None
    ) -> None:
        self.cameras: dict[str, CameraEngine] = {}
        # The rules of older versions, for cameras that must finish records under one (a
        # processor re-applying what its predecessor published under it; docs/rules.md).
        self._resolve = resolve
        self._older: dict[int, dict[str, CameraRules]] = {}
        self._set(rules, version)

    def _set(self, rules: RulesSettings, version: int) -> None:
        self.version = version
        self.rules = {cam.camera: cam for cam in rules.cameras}
        self.registers: dict[str, tuple[str, str]] = {
            lane.pos_register: (cam.camera, lane.name)
            for cam in rules.cameras
            for lane in cam.lanes
            if lane.pos_register is not None
        }

    def switch(self, rules: RulesSettings, version: int) -> list[str]:
        """From the next record on, apply `rules`; returns the cameras in memory it converted.

        Cameras in memory are converted now (state of unchanged rules kept); the others are
        converted when their checkpoint is loaded, by the same digests, which gives the same
        state. A camera without rules in `rules` is dropped.
        """
        self._set(rules, version)
        self._older.clear()
        converted = []
        for camera_id in sorted(self.cameras):
            if camera_id in self.rules:
                self.cameras[camera_id] = self.cameras[camera_id].switched(self.rules[camera_id], version)
                converted.append(camera_id)
            else:
                del self.cameras[camera_id]
        return converted

    def rules_at(self, version: int) -> dict[str, CameraRules]:
        """Rules per camera of `version` (the one in force, or an older one)."""
        if version == self.version:
            return self.rules
        if version not in self._older:
            if self._resolve is None:
                raise KeyError(f"rules version {version} is not known to this engine")
            self._older[version] = {c.camera: c for c in self._resolve(version).cameras}
        return self._older[version]

    def has_camera(self, camera_id: str, version: int | None = None) -> bool:
        return camera_id in self.rules_at(self.version if version is None else version)

    def camera(self, camera_id: str, version: int | None = None) -> CameraEngine:
        """The camera's engine; one not in memory yet starts on `version` (default: in force)."""
        engine = self.cameras.get(camera_id)
        if engine is None:
            v = self.version if version is None else version
            engine = self.cameras[camera_id] = CameraEngine(self.rules_at(v)[camera_id], v)
        return engine

    def at_version(self, camera_id: str, version: int) -> CameraEngine:
        """The camera's engine on `version`, converted if it is on another one."""
        engine = self.camera(camera_id, version)
        if engine.version != version:
            engine = self.cameras[camera_id] = engine.switched(self.rules_at(version)[camera_id], version)
        return engine

    def pin(self, camera_id: str, rules: CameraRules, version: int) -> CameraEngine:
        """Run `camera_id` on an older version for now (a processor finishing what its
        predecessor applied under that version); the next `switch` converts it."""
        engine = self.cameras[camera_id] = CameraEngine(rules, version)
        return engine

    def behind(self) -> list[str]:
        """Cameras in memory on another version than the one in force."""
        return sorted(c for c, e in self.cameras.items() if e.version != self.version)

    def adopt(self, rules: RulesSettings, version: int) -> None:
        """Make `version` the one in force (POS routing, cameras new to memory) without
        converting the cameras in memory: each converts at its next record (`at_version`)."""
        self._set(rules, version)

    def on_record(self, record: DetectionsRecord, version: int | None = None) -> list[AlertRecord]:
        """Apply a record under `version` (default: the one in force), converting its camera."""
        v = self.version if version is None else version
        if record.camera_id not in self.rules_at(v):
            return []
        return self.at_version(record.camera_id, v).on_frame(Frame.from_record(record))

    def route_pos(self, event: PosEvent) -> tuple[str, str] | None:
        """(camera, lane) that owns the event's register, or None when none does."""
        return self.registers.get(event.register_id)

    def on_pos(self, event: PosEvent) -> list[AlertRecord]:
        target = self.route_pos(event)
        if target is None:
            return []
        camera, lane = target
        engine = self.camera(camera)
        if lane not in engine.lanes:  # the camera is pinned to a version without that lane
            return []
        return engine.on_pos(lane, event)

    def on_health(self, record: CameraHealth) -> list[AlertRecord]:
        """Apply a camera-health record to its camera's rules, on the version the camera is on
        (as POS events: a camera pinned to an older version stays there)."""
        if not self.has_camera(record.camera_id):
            return []
        return self.camera(record.camera_id).on_health(record)

    def flush(self) -> list[AlertRecord]:
        alerts: list[AlertRecord] = []
        for camera_id in sorted(self.cameras):
            alerts += self.cameras[camera_id].flush()
        return alerts
