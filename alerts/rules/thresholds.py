"""Declarative threshold rules from YAML: object count, entry rate or dwell time compared to
a value, optionally only during time-of-day windows and only after holding for `for_s`."""

from __future__ import annotations

import operator
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

from alerts.frame import Frame
from alerts.geometry import Polygon
from alerts.rules.base import NS, CameraContext, Evaluator, expire
from alerts.settings import ThresholdRule
from schemas.alert import AlertRecord

OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
}
DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
UNITS = {"count": "objects", "rate": "per minute", "dwell": "s"}


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


class ThresholdEvaluator(Evaluator):
    def __init__(self, cfg: ThresholdRule, ctx: CameraContext) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.zone = Polygon(cfg.zone) if cfg.zone else None
        self.cmp = OPS[cfg.op]
        self.tz = ZoneInfo(cfg.timezone)
        self.windows = [(_minutes(w.start), _minutes(w.end), w.days) for w in cfg.active]
        self.window_ns = int(cfg.window_s * NS)
        super().__init__(ctx)

    def initial_state(self) -> dict[str, Any]:
        # tracks[tid] = [first_seen_ns, last_ns, entered_ns or -1, fired]
        return {
            "last": -1,
            "first": -1,
            "episode": None,
            "fired": False,
            "last_fire": None,
            "tracks": {},
            "entries": [],
        }

    def active_at(self, capture_ns: int) -> bool:
        """Time-of-day windows are read in local time at the capture instant (deterministic)."""
        if not self.windows:
            return True
        local = datetime.fromtimestamp(capture_ns / NS, self.tz)
        minute, day = local.hour * 60 + local.minute, DAYS[local.weekday()]
        for start, end, days in self.windows:
            inside = start <= minute < end if start <= end else (minute >= start or minute < end)
            if inside and (days is None or day in days):
                return True
        return False

    def on_frame(self, frame: Frame, points: NDArray[np.float64]) -> list[AlertRecord]:
        st = self.state
        t = frame.capture_ns
        if t < st["last"]:
            return []  # thresholds run in capture order; a late frame cannot rewrite an episode
        st["last"] = t
        if st["first"] < 0:
            st["first"] = t
        mask = frame.select(self.cfg.classes, self.cfg.min_confidence)
        if self.zone is not None and mask.any():
            mask = mask & self.zone.contains(points)
        active = self.active_at(t)
        if self.cfg.metric == "dwell":
            return self._dwell(frame, mask, active)
        if self.cfg.metric == "count":
            value = float(np.count_nonzero(mask))
            ready = True
        else:
            value = self._rate(frame, mask)
            ready = t - st["first"] >= self.window_ns  # a partial first window is not a rate
        return self._episode(t, value, active and ready and self.cmp(value, self.cfg.value))

    def _rate(self, frame: Frame, mask: NDArray[np.bool_]) -> float:
        st = self.state
        t = frame.capture_ns
        for tid in frame.tracker_id[mask & frame.tracked()].tolist():
            key = str(tid)
            if key not in st["tracks"]:
                st["tracks"][key] = [t, t, -1, False]
                st["entries"].append(t)
            st["tracks"][key][1] = t
        horizon = t - self.window_ns
        entries = st["entries"]
        while entries and entries[0] <= horizon:
            entries.pop(0)
        return len(entries) * 60.0 / self.cfg.window_s

    def _episode(self, t: int, value: float, holds: bool) -> list[AlertRecord]:
        st = self.state
        if not holds:
            st["episode"], st["fired"] = None, False
            return []
        if st["episode"] is None:
            st["episode"], st["fired"] = t, False
        if st["fired"] or t - st["episode"] < self.cfg.for_s * NS:
            return []
        if st["last_fire"] is not None and t - st["last_fire"] < self.cfg.cooldown_s * NS:
            return []
        st["fired"], st["last_fire"] = True, t
        unit = UNITS[self.cfg.metric]
        return [
            self.ctx.alert(
                type="threshold",
                severity=self.cfg.severity,
                rule=self.name,
                start_ns=st["episode"],
                end_ns=t,
                summary=f"{self.name}: {self.cfg.metric} {value:g} {unit} {self.cfg.op} {self.cfg.value:g}"
                + (f" for {self.cfg.for_s:g}s" if self.cfg.for_s else ""),
                evidence={
                    "kind": self.cfg.metric,
                    "value": round(value, 4),
                    "op": self.cfg.op,
                    "threshold": self.cfg.value,
                    "for_s": self.cfg.for_s,
                    "classes": self.cfg.classes,
                },
                id_parts=(self.cfg.metric, st["episode"]),
            )
        ]

    def _dwell(self, frame: Frame, inside: NDArray[np.bool_], active: bool) -> list[AlertRecord]:
        tracks = self.state["tracks"]
        t = frame.capture_ns
        alerts = []
        tracked = frame.select(self.cfg.classes, self.cfg.min_confidence) & frame.tracked()
        keys = frame.track_keys()
        in_zone = inside.tolist()
        for i in tracked.nonzero()[0].tolist():
            key = keys[i]
            tr = tracks.setdefault(key, [t, t, -1, False])
            tr[1] = t
            if not in_zone[i]:
                tr[2], tr[3] = -1, False  # left the zone: a new visit starts a new dwell
                continue
            if tr[2] < 0:
                tr[2] = t
            dwell_s = (t - tr[2]) / NS
            if active and not tr[3] and self.cmp(dwell_s, self.cfg.value):
                tr[3] = True
                alerts.append(
                    self.ctx.alert(
                        type="threshold",
                        severity=self.cfg.severity,
                        rule=self.name,
                        start_ns=tr[2],
                        end_ns=t,
                        summary=f"{self.name}: {frame.class_name[i]} (track {key}) in zone {dwell_s:.1f}s",
                        evidence={
                            "kind": "dwell",
                            "track_id": int(key),
                            "class_name": str(frame.class_name[i]),
                            "dwell_s": round(dwell_s, 3),
                            "threshold": self.cfg.value,
                            "op": self.cfg.op,
                            "frame": frame.frame_key(),
                        },
                        id_parts=("dwell", key, tr[2]),
                    )
                )
        return alerts

    def on_gap(self, capture_ns: int) -> None:
        """The condition was not observed at `capture_ns`: an episode does not hold across it, and
        a dwell starts again when the track is seen next (one that already fired stays fired)."""
        st = self.state
        if capture_ns < st["last"]:
            return  # thresholds run in capture order (see on_frame)
        st["last"] = capture_ns
        st["episode"], st["fired"] = None, False
        for tr in st["tracks"].values():
            if not tr[3]:
                tr[2] = -1

    def on_time(self, sweep: bool) -> list[AlertRecord]:
        if sweep:
            expire(self.state["tracks"], self.ctx.stale_before_ns, 1)
        return []
