"""Checkout lanes: one rule per lane, made of three jobs on one JSON state: counting tracks
over a line or into a zone per window (`lane_counting`), sessions (`lane_sessions`) and
matching counted items with POS scans (`scan_gap`). This module routes records, POS events and
event time to them in a fixed order, so replays stay byte-identical."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from alerts.frame import Frame
from alerts.pos import PosEvent
from alerts.rules.base import NS, CameraContext, Evaluator, box_list, expire
from alerts.rules.lane_counting import LAST, LineCounter, WindowTally
from alerts.rules.lane_sessions import Sessions
from alerts.rules.scan_gap import ScanGap
from alerts.settings import LaneSettings
from schemas.alert import AlertRecord

POS_MEMORY_NS = 600 * NS  # POS event keys remembered this long, to drop redeliveries


class LaneEvaluator(Evaluator):
    def __init__(self, cfg: LaneSettings, ctx: CameraContext) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.counter = LineCounter(cfg)
        self.windows = WindowTally(cfg, ctx)
        self.sessions = Sessions(cfg, ctx)
        self.scan_gap = ScanGap(cfg, cfg.scan_gap, ctx) if cfg.scan_gap else None
        super().__init__(ctx)

    def initial_state(self) -> dict[str, Any]:
        return {
            "tracks": {},
            "windows": {},
            "closed_until": -1,
            "totals": {},
            "late_dropped": 0,
            "sessions": [],
            "pending": [],
            "scans": [],
            "pos_seen": {},
        }

    def on_frame(self, frame: Frame, points: NDArray[np.float64]) -> list[AlertRecord]:
        for i, tid in self.counter.counted(frame, points, self.state["tracks"]):
            self._count(frame, i, tid, str(frame.class_name[i]))
        return []

    def _count(self, frame: Frame, i: int, tid: str, cls: str) -> None:
        st = self.state
        t = frame.capture_ns
        self.windows.add(st, t, cls)
        session = self.sessions.at(st, t, open_if_missing=True)
        if session is not None:
            session["counts"][cls] = session["counts"].get(cls, 0) + 1
            session["items"] += 1
            session["last"] = max(session["last"], t)
        if self.scan_gap is not None and self.scan_gap.wants(cls):
            item = {
                "tid": tid,
                "t": t,
                "cls": cls,
                "seq": frame.seq,
                "box": box_list(frame.xyxy, i),
                "frame": frame.frame_key(),
            }
            self.scan_gap.item(st, item)

    def on_pos(self, event: PosEvent) -> list[AlertRecord]:
        st = self.state
        key = event.key()
        if key in st["pos_seen"]:
            return []  # a redelivered POS event must not count twice
        st["pos_seen"][key] = event.at_ns
        t = event.at_ns
        if event.type == "session_open":
            self.sessions.pos_open(st, key, t)
        elif event.type == "session_close":
            self.sessions.pos_close(st, t)
        else:
            session = self.sessions.at(st, t, open_if_missing=True)
            if session is not None:
                session["scans"] += event.quantity
                session["last"] = max(session["last"], t)
            if self.scan_gap is not None:
                self.scan_gap.scan(st, t, event.class_name, event.quantity, key)
        return self.on_time(sweep=False)

    def on_time(self, sweep: bool) -> list[AlertRecord]:
        st = self.state
        ctx = self.ctx
        wm = ctx.watermark_ns
        alerts: list[AlertRecord] = []
        if wm >= 0:
            alerts += self.windows.close(st, wm)
            alerts += self.sessions.close(st, wm)
        if self.scan_gap is not None:
            alerts += self.scan_gap.due(st)
        if sweep:
            expire(st["tracks"], ctx.stale_before_ns, LAST)
            if self.scan_gap is not None:
                self.scan_gap.sweep(st, wm)
            old = ctx.max_capture_ns - POS_MEMORY_NS
            st["pos_seen"] = {k: v for k, v in st["pos_seen"].items() if v >= old}
        return alerts

    def flush(self) -> list[AlertRecord]:
        st = self.state
        wm = max(self.ctx.max_capture_ns, 0)
        alerts = self.windows.close(st, wm, force=True) + self.sessions.close(st, wm, force=True)
        if self.scan_gap is not None:
            alerts += self.scan_gap.flush(st)
        return alerts
