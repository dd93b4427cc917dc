"""Vectorised geometry over all boxes of a record: anchors, line sides, polygons.

Per-box Python loops would dominate the processor's CPU time, so every function here
takes (n, 2) point arrays and answers for all points at once.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
IntArray = NDArray[np.int8]


def anchor_points(xyxy: FloatArray, anchor: str) -> FloatArray:
    """The point of each box that stands for the object (feet for people on a floor plane)."""
    if xyxy.size == 0:
        return np.empty((0, 2), dtype=np.float64)
    out = np.empty((len(xyxy), 2), dtype=np.float64)
    np.add(xyxy[:, 0], xyxy[:, 2], out=out[:, 0])
    out[:, 0] *= 0.5
    if anchor == "center":
        np.add(xyxy[:, 1], xyxy[:, 3], out=out[:, 1])
        out[:, 1] *= 0.5
    elif anchor == "bottom_center":
        out[:, 1] = xyxy[:, 3]
    elif anchor == "top_center":
        out[:, 1] = xyxy[:, 1]
    else:
        raise ValueError(f"unknown anchor {anchor!r}")
    return out


class Line:
    """A directed segment; positive side = right-hand side of start->end on the image."""

    def __init__(self, start: Sequence[float], end: Sequence[float]) -> None:
        self.start = np.asarray(start, dtype=np.float64)
        self.end = np.asarray(end, dtype=np.float64)
        self.vec = self.end - self.start
        self.length2 = float(self.vec @ self.vec)
        if self.length2 == 0:
            raise ValueError("degenerate line")
        self.length = self.length2**0.5

    def signed_distance(self, points: FloatArray) -> FloatArray:
        """Cross product of (end-start) and (p-start), in pixels from the infinite line."""
        rel = points - self.start
        return (self.vec[0] * rel[:, 1] - self.vec[1] * rel[:, 0]) / self.length

    def along(self, points: FloatArray) -> FloatArray:
        """Projection parameter: 0 at start, 1 at end; outside [0, 1] is beyond the segment."""
        return ((points - self.start) @ self.vec) / self.length2

    def sides(self, points: FloatArray, band_px: float) -> IntArray:
        """+1 / -1 clearly on a side, 0 inside the hysteresis band (keeps the previous side)."""
        d = self.signed_distance(points)
        out = np.zeros(len(points), dtype=np.int8)
        out[d > band_px] = 1
        out[d < -band_px] = -1
        return out


class Polygon:
    """Even-odd point-in-polygon test, vectorised over points and edges."""

    def __init__(self, vertices: Sequence[Sequence[float]]) -> None:
        v = np.asarray(vertices, dtype=np.float64)
        if v.ndim != 2 or v.shape[0] < 3 or v.shape[1] != 2:
            raise ValueError("a polygon needs at least 3 (x, y) vertices")
        self.vertices = v
        self._x1, self._y1 = v[:, 0], v[:, 1]
        nxt = np.roll(v, -1, axis=0)
        self._x2, self._y2 = nxt[:, 0], nxt[:, 1]
        lo, hi = v.min(axis=0), v.max(axis=0)
        self._lo, self._hi = lo, hi
        # Every edge horizontal or vertical and 4 corners: the even-odd rule below reduces to
        # lo <= p < hi, with the same half-open edges; a few numpy calls instead of ~15.
        flat = (self._x1 == self._x2) | (self._y1 == self._y2)
        self._rectangle = len(v) == 4 and bool(flat.all()) and len({tuple(p) for p in v.tolist()}) == 4

    def contains(self, points: FloatArray) -> BoolArray:
        if self._rectangle:
            return ((points >= self._lo) & (points < self._hi)).all(axis=1)
        out = np.zeros(len(points), dtype=bool)
        if len(points) == 0:
            return out
        # Bounding-box rejection first: most points of a frame are far from a given zone.
        in_box = np.all((points >= self._lo) & (points <= self._hi), axis=1)
        if not in_box.any():
            return out
        cand = points[in_box]
        px = cand[:, 0:1]
        py = cand[:, 1:2]
        # (n, m): does the horizontal ray from each point cross each edge?
        crosses = (self._y1 > py) != (self._y2 > py)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_at = self._x1 + (py - self._y1) * (self._x2 - self._x1) / (self._y2 - self._y1)
        hits = crosses & (px < x_at)
        out[in_box] = (np.count_nonzero(hits, axis=1) % 2) == 1
        return out
