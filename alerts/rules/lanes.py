"""Checkout lanes: count tracks over a line / into a zone, tally per window and session,
and flag counted items that no point-of-sale scan matches (scan gap)."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from alerts.frame import Frame
from alerts.geometry import Line, Polygon
from alerts.pos import PosEvent
from alerts.rules.base import NS, CameraContext, Evaluator, box_list, expire
from alerts.settings import LaneSettings
from schemas.alert import AlertRecord

# Track entry: [side (-1/0/+1), inside (0/1), counted (0/1), last capture_ns]
SIDE, INSIDE, COUNTED, LAST = 0, 1, 2, 3
POS_MEMORY_NS = 600 * NS


class LaneEvaluator(Evaluator):
    def __init__(self, cfg: LaneSettings, ctx: CameraContext) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.line = Line(cfg.line.start, cfg.line.end) if cfg.line else None
        self.zone = Polygon(cfg.zone) if cfg.zone else None
        self.window_ns = int(cfg.window_s * NS)
        gap = cfg.scan_gap
        self.scan_classes = set(gap.classes) if gap and gap.classes else None
        self.tol_ns = int(gap.tolerance_s * NS) if gap else 0
        self.grace_ns = int(gap.grace_s * NS) if gap else 0
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

    # -- counting -------------------------------------------------------------------------
    def on_frame(self, frame: Frame, points: NDArray[np.float64]) -> list[AlertRecord]:
        mask = frame.select(self.cfg.classes, self.cfg.min_confidence) & (frame.tracker_id >= 0)
        idx = np.flatnonzero(mask)
        if idx.size == 0:
            return []
        pts = points[idx]
        inside = self.zone.contains(pts) if self.zone else np.ones(idx.size, dtype=bool)
        if self.line is not None:
            assert self.cfg.line is not None
            sides = self.line.sides(pts, self.cfg.line.band_px)
            along = self.line.along(pts)
            on_segment = (along >= 0.0) & (along <= 1.0)
        tracks: dict[str, list[int]] = self.state["tracks"]
        t = frame.capture_ns
        for j, i in enumerate(idx.tolist()):
            tid = str(int(frame.tracker_id[i]))
            tr = tracks.get(tid)
            if tr is None:
                tr = tracks[tid] = [0, 0, 0, t]
            elif t < tr[LAST]:
                continue  # older than what this track already showed: ignore for geometry
            count_now = False
            if self.line is not None:
                side = int(sides[j])
                if side != 0:
                    crossed = tr[SIDE] != 0 and side != tr[SIDE] and bool(on_segment[j]) and bool(inside[j])
                    if crossed and not tr[COUNTED]:
                        direction = "in" if side > 0 else "out"
                        count_now = self.cfg.line.direction in ("any", direction)  # type: ignore[union-attr]
                    tr[SIDE] = side
            elif inside[j] and not tr[COUNTED]:
                count_now = True
            tr[INSIDE] = int(bool(inside[j]))
            tr[LAST] = t
            if count_now:
                tr[COUNTED] = 1
                self._count(frame, i, tid, str(frame.class_name[i]))
        return []

    def _count(self, frame: Frame, i: int, tid: str, cls: str) -> None:
        st = self.state
        t = frame.capture_ns
        start = t // self.window_ns * self.window_ns
        if start + self.window_ns <= st["closed_until"]:
            st["late_dropped"] += 1
        else:
            counts = st["windows"].setdefault(str(start), {})
            counts[cls] = counts.get(cls, 0) + 1
        st["totals"][cls] = st["totals"].get(cls, 0) + 1
        session = self._session_at(t, open_if_missing=True)
        if session is not None:
            session["counts"][cls] = session["counts"].get(cls, 0) + 1
            session["items"] += 1
            session["last"] = max(session["last"], t)
        if self.cfg.scan_gap is not None and (self.scan_classes is None or cls in self.scan_classes):
            item = {
                "tid": tid,
                "t": t,
                "cls": cls,
                "seq": frame.seq,
                "box": box_list(frame.xyxy, i),
                "frame": frame.frame_key(),
            }
            if not self._match_item(item):
                st["pending"].append(item)

    # -- sessions -------------------------------------------------------------------------
    def _session_at(self, t: int, open_if_missing: bool) -> dict[str, Any] | None:
        for s in reversed(self.state["sessions"]):
            if s["start"] <= t and (s["end"] is None or t <= s["end"]):
                return s
        if open_if_missing and self.cfg.session is not None and self.cfg.session.auto_open:
            return self._open_session(f"auto-{t}", t, "auto")
        return None

    def _open_session(self, sid: str, t: int, by: str) -> dict[str, Any]:
        session = {
            "id": sid,
            "start": t,
            "end": None,
            "last": t,
            "opened_by": by,
            "closed_by": None,
            "counts": {},
            "items": 0,
            "scans": 0,
        }
        self.state["sessions"].append(session)
        return session

    def _current_open(self) -> dict[str, Any] | None:
        open_ = [s for s in self.state["sessions"] if s["end"] is None]
        return open_[-1] if open_ else None

    def _session_alert(self, s: dict[str, Any]) -> AlertRecord:
        counts = dict(sorted(s["counts"].items()))
        listing = ", ".join(f"{n} {c}" for c, n in counts.items()) or "nothing"
        return self.ctx.alert(
            type="tally",
            severity="info",
            rule=self.name,
            start_ns=s["start"],
            end_ns=s["end"],
            summary=f"{self.name}: session closed, {s['items']} item(s) ({listing}), {s['scans']} scan(s)",
            evidence={
                "kind": "session",
                "lane": self.name,
                "session_id": s["id"],
                "counts": counts,
                "items": s["items"],
                "scans": s["scans"],
                "opened_by": s["opened_by"],
                "closed_by": s["closed_by"],
                "register": self.cfg.pos_register,
            },
            id_parts=("session", self.name, s["id"]),
        )

    # -- scan gap ---------------------------------------------------------------------------
    def _class_ok(self, item_cls: str, scan_cls: str | None) -> bool:
        gap = self.cfg.scan_gap
        return not (gap and gap.match_class and scan_cls is not None and scan_cls != item_cls)

    def _match_item(self, item: dict[str, Any]) -> bool:
        """Consume one buffered scan within tolerance of a newly counted item."""
        for scan in self.state["scans"]:
            if abs(scan[0] - item["t"]) <= self.tol_ns and self._class_ok(item["cls"], scan[1]):
                scan[2] -= 1
                if scan[2] == 0:
                    self.state["scans"].remove(scan)
                return True
        return False

    def on_pos(self, event: PosEvent) -> list[AlertRecord]:
        st = self.state
        key = event.key()
        if key in st["pos_seen"]:
            return []  # a redelivered POS event must not count twice
        st["pos_seen"][key] = event.at_ns
        t = event.at_ns
        if event.type == "session_open":
            current = self._current_open()
            idle = self.cfg.session.idle_gap_s * NS if self.cfg.session else 0
            if current is not None and current["opened_by"] == "auto" and current["start"] >= t - idle:
                current.update(id=f"pos-{key}", start=min(current["start"], t), opened_by="pos")
            else:
                if current is not None:
                    current.update(end=max(t, current["start"]), closed_by="pos_open")
                self._open_session(f"pos-{key}", t, "pos")
        elif event.type == "session_close":
            current = self._current_open()
            if current is not None and current["start"] <= t:
                current.update(end=t, closed_by="pos")
        else:
            session = self._session_at(t, open_if_missing=True)
            if session is not None:
                session["scans"] += event.quantity
                session["last"] = max(session["last"], t)
            if self.cfg.scan_gap is not None:
                self._apply_scan(t, event.class_name, event.quantity, key)
        return self.on_time(sweep=False)

    def _apply_scan(self, t: int, cls: str | None, qty: int, key: str) -> None:
        pending = self.state["pending"]
        for item in sorted(pending, key=lambda it: (abs(it["t"] - t), it["t"], it["tid"])):
            if qty == 0:
                break
            if abs(item["t"] - t) <= self.tol_ns and self._class_ok(item["cls"], cls):
                pending.remove(item)
                qty -= 1
        if qty:
            self.state["scans"].append([t, cls, qty, key])

    def _gap_alert(self, item: dict[str, Any]) -> AlertRecord:
        gap = self.cfg.scan_gap
        assert gap is not None
        return self.ctx.alert(
            type="scan_gap",
            severity=gap.severity,
            rule=self.name,
            start_ns=item["t"] - self.tol_ns,
            end_ns=item["t"] + self.tol_ns,
            summary=f"{self.name}: {item['cls']} (track {item['tid']}) counted with no POS scan "
            f"within {gap.tolerance_s:g}s",
            evidence={
                "kind": "scan_gap",
                "lane": self.name,
                "register": self.cfg.pos_register,
                "track_id": int(item["tid"]),
                "class_name": item["cls"],
                "counted_ns": item["t"],
                "seq": item["seq"],
                "box": item["box"],
                "frame": item["frame"],
            },
            id_parts=("scan_gap", self.name, item["tid"], item["t"]),
        )

    # -- event time -------------------------------------------------------------------------
    def on_time(self, sweep: bool) -> list[AlertRecord]:
        st = self.state
        ctx = self.ctx
        wm = ctx.watermark_ns
        alerts: list[AlertRecord] = []
        if wm >= 0:
            alerts += self._close_windows(wm)
            alerts += self._close_sessions(wm)
        if self.cfg.scan_gap is not None and st["pending"]:
            due = ctx.max_capture_ns - self.tol_ns - self.grace_ns
            ready = [it for it in st["pending"] if it["t"] <= due]
            for item in ready:
                st["pending"].remove(item)
                alerts.append(self._gap_alert(item))
        if sweep:
            expire(st["tracks"], ctx.max_capture_ns - ctx.track_ttl_ns, LAST)
            horizon = wm - self.tol_ns
            st["scans"] = [s for s in st["scans"] if s[0] >= horizon]
            old = ctx.max_capture_ns - POS_MEMORY_NS
            st["pos_seen"] = {k: v for k, v in st["pos_seen"].items() if v >= old}
        return alerts

    def _close_windows(self, wm: int, force: bool = False) -> list[AlertRecord]:
        st = self.state
        alerts = []
        for key in sorted(st["windows"], key=int):
            start = int(key)
            end = start + self.window_ns
            if end > wm and not force:
                break
            counts = dict(sorted(st["windows"].pop(key).items()))
            if counts and self.cfg.emit_windows:
                total = sum(counts.values())
                listing = ", ".join(f"{n} {c}" for c, n in counts.items())
                alerts.append(
                    self.ctx.alert(
                        type="tally",
                        severity="info",
                        rule=self.name,
                        start_ns=start,
                        end_ns=end,
                        summary=f"{self.name}: {total} counted in {self.cfg.window_s:g}s window ({listing})",
                        evidence={
                            "kind": "window",
                            "lane": self.name,
                            "counts": counts,
                            "total": total,
                            "window_s": self.cfg.window_s,
                        },
                        id_parts=("window", self.name, start),
                    )
                )
        boundary = wm // self.window_ns * self.window_ns
        st["closed_until"] = max(st["closed_until"], boundary)
        return alerts

    def _close_sessions(self, wm: int, force: bool = False) -> list[AlertRecord]:
        idle = int(self.cfg.session.idle_gap_s * NS) if self.cfg.session else None
        alerts = []
        for s in list(self.state["sessions"]):
            if s["end"] is None and idle is not None and wm - s["last"] >= idle:
                s.update(end=s["last"], closed_by="idle")
            if s["end"] is None and force:
                s.update(end=s["last"], closed_by="end_of_input")
            if s["end"] is not None and (wm >= s["end"] or force):
                self.state["sessions"].remove(s)
                alerts.append(self._session_alert(s))
        return alerts

    def flush(self) -> list[AlertRecord]:
        wm = max(self.ctx.max_capture_ns, 0)
        alerts = self._close_windows(wm, force=True) + self._close_sessions(wm, force=True)
        for item in self.state["pending"]:
            alerts.append(self._gap_alert(item))
        self.state["pending"] = []
        return alerts
