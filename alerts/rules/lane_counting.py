"""Lane counting: which tracks crossed the line (or entered the zone) in a record, and the
per-window tallies they go into."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from alerts.frame import Frame
from alerts.geometry import Line, Polygon
from alerts.rules.base import NS, CameraContext
from alerts.settings import LaneSettings
from schemas.alert import AlertRecord

# Track entry: [side (-1/0/+1), inside (0/1), counted (0/1), last capture_ns]
SIDE, INSIDE, COUNTED, LAST = 0, 1, 2, 3


class LineCounter:
    """Counts each track at most once per lane; its state lives in the lane's `tracks`."""

    def __init__(self, cfg: LaneSettings) -> None:
        self.cfg = cfg
        self.line = Line(cfg.line.start, cfg.line.end) if cfg.line else None
        self.zone = Polygon(cfg.zone) if cfg.zone else None

    def counted(
        self, frame: Frame, points: NDArray[np.float64], tracks: dict[str, list[int]]
    ) -> list[tuple[int, str]]:
        """(box index, track id) of the tracks this record counts, in box order."""
        mask = frame.select(self.cfg.classes, self.cfg.min_confidence) & frame.tracked()
        idx = mask.nonzero()[0]
        if idx.size == 0:
            return []
        pts = points[idx]
        inside = self.zone.contains(pts).tolist() if self.zone else [True] * idx.size
        if self.line is not None:
            assert self.cfg.line is not None
            # Arrays in, plain values out: the per-track loop below compares Python floats
            # (the same comparisons as Line.sides and the segment test, without ~8 more numpy
            # calls on a handful of boxes).
            band = self.cfg.line.band_px
            distance = self.line.signed_distance(pts).tolist()
            along = self.line.along(pts).tolist()
        t = frame.capture_ns
        keys = frame.track_keys()
        out: list[tuple[int, str]] = []
        for j, i in enumerate(idx.tolist()):
            tid = keys[i]
            tr = tracks.get(tid)
            if tr is None:
                tr = tracks[tid] = [0, 0, 0, t]
            elif t < tr[LAST]:
                continue  # older than what this track already showed: ignore for geometry
            count_now = False
            if self.line is not None:
                d = distance[j]
                side = 1 if d > band else -1 if d < -band else 0
                if side != 0:
                    on_segment = 0.0 <= along[j] <= 1.0
                    crossed = tr[SIDE] != 0 and side != tr[SIDE] and on_segment and inside[j]
                    if crossed and not tr[COUNTED]:
                        direction = "in" if side > 0 else "out"
                        count_now = self.cfg.line.direction in ("any", direction)  # type: ignore[union-attr]
                    tr[SIDE] = side
            elif inside[j] and not tr[COUNTED]:
                count_now = True
            tr[INSIDE] = int(inside[j])
            tr[LAST] = t
            if count_now:
                tr[COUNTED] = 1
                out.append((i, tid))
        return out


class WindowTally:
    """Counts per tumbling window of capture time; a window is final once the watermark passes
    its end. State: the lane's `windows`, `closed_until`, `totals` and `late_dropped`."""

    def __init__(self, cfg: LaneSettings, ctx: CameraContext) -> None:
        self.cfg = cfg
        self.ctx = ctx
        self.name = cfg.name
        self.window_ns = int(cfg.window_s * NS)

    def add(self, st: dict[str, Any], t: int, cls: str) -> None:
        start = t // self.window_ns * self.window_ns
        if start + self.window_ns <= st["closed_until"]:
            st["late_dropped"] += 1
        else:
            counts = st["windows"].setdefault(str(start), {})
            counts[cls] = counts.get(cls, 0) + 1
        st["totals"][cls] = st["totals"].get(cls, 0) + 1

    def close(self, st: dict[str, Any], wm: int, force: bool = False) -> list[AlertRecord]:
        alerts = []
        for key in sorted(st["windows"], key=int):
            start = int(key)
            end = start + self.window_ns
            if end > wm and not force:
                break
            counts = dict(sorted(st["windows"].pop(key).items()))
            if counts and self.cfg.emit_windows:
                alerts.append(self._alert(start, end, counts))
        boundary = wm // self.window_ns * self.window_ns
        st["closed_until"] = max(st["closed_until"], boundary)
        return alerts

    def _alert(self, start: int, end: int, counts: dict[str, int]) -> AlertRecord:
        total = sum(counts.values())
        listing = ", ".join(f"{n} {c}" for c, n in counts.items())
        return self.ctx.alert(
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
