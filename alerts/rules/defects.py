"""Defect flags: a defect class inside the ROI, confident enough, in K of the last N frames
in which the same track was seen. One alert per object, with the best frame as evidence."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from alerts.frame import Frame
from alerts.geometry import Polygon
from alerts.rules.base import CameraContext, Evaluator, box_list, expire
from alerts.settings import DefectRule
from schemas.alert import AlertRecord


class DefectEvaluator(Evaluator):
    def __init__(self, cfg: DefectRule, ctx: CameraContext) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.roi = Polygon(cfg.roi) if cfg.roi else None
        super().__init__(ctx)

    def initial_state(self) -> dict[str, Any]:
        # tracks[tid] = {"hist": [[seq, hit], ...] (last N), "hits": [evidence...], "fired", "first",
        #               "first_ns", "last"}
        return {"tracks": {}}

    def on_frame(self, frame: Frame, points: NDArray[np.float64]) -> list[AlertRecord]:
        tracked = frame.tracked()
        if not tracked.any():
            return []
        hit = frame.select(self.cfg.classes, self.cfg.min_confidence) & tracked
        if self.roi is not None and hit.any():
            hit &= self.roi.contains(points) if len(points) else hit
        tracks: dict[str, dict[str, Any]] = self.state["tracks"]
        alerts = []
        keys = frame.track_keys()
        hits = hit.tolist()
        for i in tracked.nonzero()[0].tolist():
            tid = keys[i]
            tr = tracks.get(tid)
            if tr is None:
                if not hits[i]:
                    continue  # only tracks that ever showed a defect are followed
                tr = tracks[tid] = {
                    "hist": [],
                    "hits": [],
                    "fired": False,
                    "first": frame.seq,
                    "first_ns": frame.capture_ns,
                    "last": frame.capture_ns,
                }
            elif frame.capture_ns < tr["last"]:
                continue
            tr["last"] = frame.capture_ns
            tr["hist"].append([frame.seq, int(hits[i])])
            if hits[i]:
                tr["hits"].append(
                    {
                        "seq": frame.seq,
                        "capture_ns": frame.capture_ns,
                        "box": box_list(frame.xyxy, i),
                        "confidence": round(float(frame.confidence[i]), 4),
                        "class_name": str(frame.class_name[i]),
                        "frame_key": frame.frame_key(),
                        "frame": frame.frame_ref,
                    }
                )
            if len(tr["hist"]) > self.cfg.n:
                del tr["hist"][: len(tr["hist"]) - self.cfg.n]
                oldest = tr["hist"][0][0]
                tr["hits"] = [h for h in tr["hits"] if h["seq"] >= oldest]
            if not tr["fired"] and sum(h for _, h in tr["hist"]) >= self.cfg.k:
                tr["fired"] = True
                alerts.append(self._alert(tid, tr))
        return alerts

    def _alert(self, tid: str, tr: dict[str, Any]) -> AlertRecord:
        hits = tr["hits"]
        best = max(hits, key=lambda h: (h["confidence"], -h["seq"]))
        severity = self.cfg.severity
        if self.cfg.critical_confidence is not None and best["confidence"] >= self.cfg.critical_confidence:
            severity = "critical"
        return self.ctx.alert(
            type="defect",
            severity=severity,
            rule=self.name,
            start_ns=hits[0]["capture_ns"],
            end_ns=hits[-1]["capture_ns"],
            summary=f"{self.name}: {best['class_name']} on track {tid} in {len(hits)} of the last "
            f"{len(tr['hist'])} frames (best confidence {best['confidence']:.2f})",
            evidence={
                "kind": "defect",
                "track_id": int(tid),
                "class_name": best["class_name"],
                "k": self.cfg.k,
                "n": self.cfg.n,
                "frame_seqs": [h["seq"] for h in hits],
                "boxes": [h["box"] for h in hits],
                "confidences": [h["confidence"] for h in hits],
                "best_frame": {
                    k: best[k] for k in ("seq", "capture_ns", "box", "confidence", "frame_key", "frame")
                },
            },
            # Tracker ids start over when a worker restarts: the capture time of the first frame
            # keeps two objects with the same track id (and first seq) apart.
            id_parts=(tid, tr["first"], tr.get("first_ns", hits[0]["capture_ns"])),
        )

    def on_time(self, sweep: bool) -> list[AlertRecord]:
        if sweep:
            expire(self.state["tracks"], self.ctx.stale_before_ns, "last")
        return []
