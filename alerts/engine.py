"""The rule engine: detections records and POS events in, alert records out.

Pure and deterministic: no clocks, no I/O, JSON-only state. The faust app wraps it with
Kafka and Redis checkpoints; `sightline alerts test-rules` feeds it recorded records. Same input, same
order, same alerts (ids included).
"""

from __future__ import annotations

import logging
from typing import Any

from alerts.frame import Frame
from alerts.geometry import anchor_points
from alerts.pos import PosEvent
from alerts.rules import (
    AnomalyEvaluator,
    CameraContext,
    DefectEvaluator,
    Evaluator,
    LaneEvaluator,
    ThresholdEvaluator,
)
from alerts.settings import CameraRules, RulesSettings
from schemas.alert import AlertRecord
from schemas.detections import DetectionsRecord

log = logging.getLogger(__name__)
STATE_VERSION = 1


class CameraEngine:
    """All rules of one camera, sharing one event-time clock."""

    def __init__(self, rules: CameraRules) -> None:
        self.rules = rules
        self.ctx = CameraContext(rules.camera, rules.lateness_s, rules.track_ttl_s, rules.anchor)
        self.evaluators: list[Evaluator] = [
            *(LaneEvaluator(c, self.ctx) for c in rules.lanes),
            *(DefectEvaluator(c, self.ctx) for c in rules.defects),
            *(AnomalyEvaluator(c, self.ctx) for c in rules.anomalies),
            *(ThresholdEvaluator(c, self.ctx) for c in rules.thresholds),
        ]
        self.lanes = {e.name: e for e in self.evaluators if isinstance(e, LaneEvaluator)}

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
        }

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Load a checkpoint; rules added since start empty, rules removed are dropped."""
        if snapshot.get("v") != STATE_VERSION:
            raise ValueError(f"unsupported state version {snapshot.get('v')!r}")
        self.ctx.load(snapshot["clock"])
        for ev in self.evaluators:
            if ev.name in snapshot["rules"]:
                ev.state = snapshot["rules"][ev.name]


class Engine:
    """Routes records to their camera's rules; cameras without rules are ignored."""

    def __init__(self, rules: RulesSettings) -> None:
        self.rules = {cam.camera: cam for cam in rules.cameras}
        self.cameras: dict[str, CameraEngine] = {}
        self.registers: dict[str, tuple[str, str]] = {
            lane.pos_register: (cam.camera, lane.name)
            for cam in rules.cameras
            for lane in cam.lanes
            if lane.pos_register is not None
        }

    def has_camera(self, camera_id: str) -> bool:
        return camera_id in self.rules

    def camera(self, camera_id: str) -> CameraEngine:
        engine = self.cameras.get(camera_id)
        if engine is None:
            engine = self.cameras[camera_id] = CameraEngine(self.rules[camera_id])
        return engine

    def on_record(self, record: DetectionsRecord) -> list[AlertRecord]:
        if record.camera_id not in self.rules:
            return []
        return self.camera(record.camera_id).on_frame(Frame.from_record(record))

    def route_pos(self, event: PosEvent) -> tuple[str, str] | None:
        """(camera, lane) that owns the event's register, or None when none does."""
        return self.registers.get(event.register_id)

    def on_pos(self, event: PosEvent) -> list[AlertRecord]:
        target = self.route_pos(event)
        if target is None:
            return []
        camera, lane = target
        return self.camera(camera).on_pos(lane, event)

    def flush(self) -> list[AlertRecord]:
        alerts: list[AlertRecord] = []
        for camera_id in sorted(self.cameras):
            alerts += self.cameras[camera_id].flush()
        return alerts
