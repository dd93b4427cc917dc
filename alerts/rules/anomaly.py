"""Statistical anomalies: per class, the mean per-frame count in event-time buckets is
compared with its exponentially weighted mean and variance; a large |z| is a spike or drop."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from alerts.frame import Frame
from alerts.geometry import Polygon
from alerts.rules.base import NS, CameraContext, Evaluator
from alerts.settings import AnomalyRule
from schemas.alert import AlertRecord


class AnomalyEvaluator(Evaluator):
    def __init__(self, cfg: AnomalyRule, ctx: CameraContext) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.zone = Polygon(cfg.zone) if cfg.zone else None
        self.bucket_ns = int(cfg.bucket_s * NS)
        super().__init__(ctx)

    def initial_state(self) -> dict[str, Any]:
        # buckets[start] = [frames, {class: summed count}]; stats[class] = [mean, var, n]
        return {"buckets": {}, "stats": {}, "closed_until": -1, "late_dropped": 0}

    def on_frame(self, frame: Frame, points: NDArray[np.float64]) -> list[AlertRecord]:
        st = self.state
        start = frame.capture_ns // self.bucket_ns * self.bucket_ns
        if start + self.bucket_ns <= st["closed_until"]:
            st["late_dropped"] += 1
            return []
        mask = frame.select(self.cfg.classes, self.cfg.min_confidence)
        if self.zone is not None and mask.any():
            mask = mask & self.zone.contains(points)
        bucket = st["buckets"].setdefault(str(start), [0, {}])
        bucket[0] += 1
        sums = bucket[1]
        for cls in self.cfg.classes:
            n = (
                int(np.count_nonzero(mask & frame.select([cls])))
                if len(self.cfg.classes) > 1
                else int(mask.sum())
            )
            sums[cls] = sums.get(cls, 0) + n
        return []

    def on_time(self, sweep: bool) -> list[AlertRecord]:
        return self._close(self.ctx.watermark_ns, force=False)

    def flush(self) -> list[AlertRecord]:
        return self._close(max(self.ctx.max_capture_ns, 0), force=True)

    def _close(self, wm: int, force: bool) -> list[AlertRecord]:
        st = self.state
        if wm < 0:
            return []
        alerts = []
        for key in sorted(st["buckets"], key=int):
            start = int(key)
            if start + self.bucket_ns > wm and not force:
                break
            frames, sums = st["buckets"].pop(key)
            for cls in self.cfg.classes:
                alert = self._evaluate(cls, start, sums.get(cls, 0) / frames, frames)
                if alert is not None:
                    alerts.append(alert)
        st["closed_until"] = max(st["closed_until"], wm // self.bucket_ns * self.bucket_ns)
        return alerts

    def _evaluate(self, cls: str, start: int, x: float, frames: int) -> AlertRecord | None:
        stats = self.state["stats"]
        if cls not in stats:
            stats[cls] = [x, 0.0, 1]
            return None
        mean, var, n = stats[cls]
        alert = None
        if n >= self.cfg.warmup_buckets:
            std = math.sqrt(var)
            z = (x - mean) / max(std, self.cfg.min_std)
            kind = "spike" if z >= self.cfg.z_threshold else "drop" if z <= -self.cfg.z_threshold else None
            if kind is not None and kind in self.cfg.alerts:
                alert = self.ctx.alert(
                    type=kind,
                    severity=self.cfg.severity,
                    rule=self.name,
                    start_ns=start,
                    end_ns=start + self.bucket_ns,
                    summary=f"{self.name}: {cls} {kind} to {x:.2f}/frame (usual {mean:.2f}, z={z:+.1f})",
                    evidence={
                        "kind": kind,
                        "class_name": cls,
                        "value": round(x, 4),
                        "mean": round(mean, 4),
                        "std": round(std, 4),
                        "z": round(z, 3),
                        "frames": frames,
                        "bucket_s": self.cfg.bucket_s,
                    },
                    id_parts=(cls, start),
                )
        # Standard exponentially weighted mean/variance update (West, 1979).
        diff = x - mean
        incr = self.cfg.alpha * diff
        stats[cls] = [mean + incr, (1 - self.cfg.alpha) * (var + diff * incr), n + 1]
        return alert
