"""Lane sessions: opened and closed by POS events (or by the first item, with `auto_open`),
closed after an idle gap of event time; each closed session raises one `tally` alert."""

from __future__ import annotations

from typing import Any

from alerts.rules.base import NS, CameraContext
from alerts.settings import LaneSettings
from schemas.alert import AlertRecord

Session = dict[str, Any]


class Sessions:
    """State: the lane's `sessions` list (JSON)."""

    def __init__(self, cfg: LaneSettings, ctx: CameraContext) -> None:
        self.cfg = cfg
        self.ctx = ctx
        self.name = cfg.name

    def at(self, st: dict[str, Any], t: int, open_if_missing: bool) -> Session | None:
        """The session `t` falls in; with `auto_open`, a new one when none does."""
        for s in reversed(st["sessions"]):
            if s["start"] <= t and (s["end"] is None or t <= s["end"]):
                return s
        if open_if_missing and self.cfg.session is not None and self.cfg.session.auto_open:
            return self._open(st, f"auto-{t}", t, "auto")
        return None

    def _open(self, st: dict[str, Any], sid: str, t: int, by: str) -> Session:
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
        st["sessions"].append(session)
        return session

    def _current_open(self, st: dict[str, Any]) -> Session | None:
        open_ = [s for s in st["sessions"] if s["end"] is None]
        return open_[-1] if open_ else None

    def pos_open(self, st: dict[str, Any], key: str, t: int) -> None:
        """A POS `session_open`: adopts a just auto-opened session, else closes the open one."""
        current = self._current_open(st)
        idle = self.cfg.session.idle_gap_s * NS if self.cfg.session else 0
        if current is not None and current["opened_by"] == "auto" and current["start"] >= t - idle:
            current.update(id=f"pos-{key}", start=min(current["start"], t), opened_by="pos")
        else:
            if current is not None:
                current.update(end=max(t, current["start"]), closed_by="pos_open")
            self._open(st, f"pos-{key}", t, "pos")

    def pos_close(self, st: dict[str, Any], t: int) -> None:
        current = self._current_open(st)
        if current is not None and current["start"] <= t:
            current.update(end=t, closed_by="pos")

    def close(self, st: dict[str, Any], wm: int, force: bool = False) -> list[AlertRecord]:
        idle = int(self.cfg.session.idle_gap_s * NS) if self.cfg.session else None
        alerts = []
        for s in list(st["sessions"]):
            if s["end"] is None and idle is not None and wm - s["last"] >= idle:
                s.update(end=s["last"], closed_by="idle")
            if s["end"] is None and force:
                s.update(end=s["last"], closed_by="end_of_input")
            if s["end"] is not None and (wm >= s["end"] or force):
                st["sessions"].remove(s)
                alerts.append(self._alert(s))
        return alerts

    def _alert(self, s: Session) -> AlertRecord:
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
