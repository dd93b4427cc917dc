"""What every rule evaluator shares: the camera's event-time clock and alert building."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from alerts.frame import Frame
from alerts.pos import PosEvent
from schemas.alert import AlertRecord, AlertType, Severity, TimeWindow, alert_id

NS = 1_000_000_000
SWEEP_NS = NS  # forget expired tracks at most once per second of event time


class CameraContext:
    """Event-time clock of one camera: the newest capture time seen and the watermark.

    Alerts take their times from here, never from the wall clock, so replaying the same
    records gives byte-identical alerts.
    """

    def __init__(self, camera_id: str, lateness_s: float, track_ttl_s: float, anchor: str) -> None:
        self.camera_id = camera_id
        self.lateness_ns = int(lateness_s * NS)
        self.track_ttl_ns = int(track_ttl_s * NS)
        self.anchor = anchor
        self.max_capture_ns = -1
        # Newest capture time of a frame the model actually saw (not skipped as stale): tracks
        # are forgotten after `track_ttl_s` of *observed* time, so a run of skipped frames never
        # expires a track that is still there (it would be counted again when seen next).
        self.seen_ns = -1
        self.last_sweep_ns = -1
        # Newest detections `seq` applied: a record at or below it is a duplicate (an
        # at-least-once worker re-publishing after a restart) and must not count again.
        self.last_seq = -1
        # Capture time of the record being handled; alerts raised now carry it.
        self.trigger_ns = 0
        # The saved rules version in force (0: the rules file); alerts carry it.
        self.rules_version = 0

    @property
    def watermark_ns(self) -> int:
        """Windows ending at or before this are final: later records are too late for them."""
        return self.max_capture_ns - self.lateness_ns

    @property
    def stale_before_ns(self) -> int:
        """Tracks last seen before this are gone (`track_ttl_s` of observed time without them)."""
        return self.seen_ns - self.track_ttl_ns

    def observe(self, capture_ns: int, seen: bool = True) -> None:
        """Event time advances with every record, skipped frames included (docs/alerts.md)."""
        self.max_capture_ns = max(self.max_capture_ns, capture_ns)
        if seen:
            self.seen_ns = max(self.seen_ns, capture_ns)
        self.trigger_ns = max(capture_ns, self.max_capture_ns)

    def sweep_due(self) -> bool:
        if self.max_capture_ns - self.last_sweep_ns >= SWEEP_NS:
            self.last_sweep_ns = self.max_capture_ns
            return True
        return False

    def seen(self, seq: int) -> bool:
        """True for a record at or below the newest applied `seq` (the decoder's seq increases)."""
        return seq <= self.last_seq

    def state(self) -> dict[str, int]:
        return {
            "max": self.max_capture_ns,
            "seen": self.seen_ns,
            "sweep": self.last_sweep_ns,
            "seq": self.last_seq,
        }

    def load(self, state: dict[str, int]) -> None:
        self.max_capture_ns = state["max"]
        self.last_sweep_ns = state["sweep"]
        self.last_seq = state.get("seq", -1)  # checkpoints written before seq was kept
        self.seen_ns = state.get("seen", self.max_capture_ns)  # ... and before skipped frames
        self.trigger_ns = max(self.max_capture_ns, 0)

    def alert(
        self,
        *,
        type: AlertType,
        severity: Severity,
        rule: str,
        start_ns: int,
        end_ns: int,
        summary: str,
        evidence: dict[str, Any],
        id_parts: tuple[object, ...],
        at_ns: int | None = None,
    ) -> AlertRecord:
        """`at_ns`: the event time the alert was raised at, for rules on another clock than the
        detections' (camera health); default: the capture time of the record being handled."""
        at = max(self.trigger_ns if at_ns is None else at_ns, 0)
        return AlertRecord(
            alert_id=alert_id(type, self.camera_id, rule, *id_parts),
            type=type,
            severity=severity,
            camera_id=self.camera_id,
            rule=rule,
            window=TimeWindow(start_ns=max(start_ns, 0), end_ns=max(end_ns, 0)),
            capture_ns=at,
            created_ns=at,
            summary=summary,
            evidence={"camera_id": self.camera_id, **evidence},
            rules_version=self.rules_version,
        )


class Evaluator:
    """One configured rule on one camera; subclasses keep all state in `self.state`."""

    name: str

    def __init__(self, ctx: CameraContext) -> None:
        self.ctx = ctx
        self.state: dict[str, Any] = self.initial_state()

    def initial_state(self) -> dict[str, Any]:
        return {}

    def on_frame(self, frame: Frame, points: NDArray[np.float64]) -> list[AlertRecord]:
        """A detections record arrived; `points` are the anchor points of its boxes."""
        return []

    def on_gap(self, capture_ns: int) -> None:
        """A frame the worker skipped (too old to be worth the model): nothing was observed at
        `capture_ns`. Rules that need continuous observation (thresholds' `for_s`, dwell) end
        what they were timing; the others keep waiting for frames that were seen."""

    def on_time(self, sweep: bool) -> list[AlertRecord]:
        """Event time advanced: close what is final. `sweep`: also forget stale tracks."""
        return []

    def on_pos(self, event: PosEvent) -> list[AlertRecord]:
        return []

    def flush(self) -> list[AlertRecord]:
        """End of input (replay): close everything that is still open."""
        return []


def box_list(xyxy: NDArray[np.float64], i: int) -> list[float]:
    return [round(float(v), 2) for v in xyxy[i]]


def expire(tracks: dict[str, Any], older_than_ns: int, last_index: int | str) -> None:
    """Drop tracks whose last-seen time (at `last_index` in each entry) is too old."""
    stale = [tid for tid, tr in tracks.items() if tr[last_index] < older_than_ns]
    for tid in stale:
        del tracks[tid]
