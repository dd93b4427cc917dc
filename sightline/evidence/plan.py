"""What an alert's evidence shows: its key frame, the object to highlight, the clip's time span.

Each rule says in the alert's `evidence` which frame and object it is about (alerts/rules/*):
a defect its best frame (`best_frame.seq`, its box) and track; a scan gap the counted frame
(`seq`, `box`) and track; a dwell threshold its track. Every other alert (tally, count and rate
thresholds, spikes and drops, drift) is about the frame that closed its window or crossed its
limit: the alert's `capture_ns`. Classes named by the alert (a threshold's `classes`, an
anomaly's `class_name`) are highlighted when there is no single track.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from schemas.alert import AlertRecord
from schemas.detections import DetectionsRecord
from sightline.drawing import Highlight
from sightline.evidence.settings import EvidenceSettings

NS = 1_000_000_000


@dataclass(frozen=True)
class Plan:
    key_seq: int | None  # the key frame by seq, when the alert names it
    key_ns: int  # else the key frame is the last one captured at or before this
    clip_start_ns: int
    clip_end_ns: int
    highlight: Highlight  # for the snapshot: with the boxes the alert names
    clip_highlight: Highlight  # for the clip: tracks and classes only (the boxes are one frame's)

    def key_record(self, records: list[DetectionsRecord]) -> DetectionsRecord | None:
        if self.key_seq is not None:
            return next((r for r in records if r.seq == self.key_seq), None)
        before = [r for r in records if r.capture_ns <= self.key_ns]
        return max(before, key=lambda r: r.capture_ns) if before else None


def _box(value: Any) -> list[list[float]]:
    if isinstance(value, list) and len(value) == 4 and all(isinstance(v, int | float) for v in value):
        return [[float(v) for v in value]]
    return []


def plan_for(alert: AlertRecord, settings: EvidenceSettings) -> Plan:
    ev = alert.evidence
    key_seq: int | None = None
    key_ns = alert.capture_ns
    boxes: list[list[float]] = []
    best = ev.get("best_frame")
    if isinstance(best, dict) and isinstance(best.get("seq"), int):  # defect
        key_seq, boxes = best["seq"], _box(best.get("box"))
        key_ns = int(best.get("capture_ns") or key_ns)
    elif isinstance(ev.get("seq"), int):  # scan gap
        key_seq, boxes = ev["seq"], _box(ev.get("box"))
        key_ns = int(ev.get("counted_ns") or key_ns)
    tracks = frozenset([ev["track_id"]]) if isinstance(ev.get("track_id"), int) else frozenset()
    classes: list[str] = []
    if not tracks:
        if isinstance(ev.get("classes"), list):
            classes = [c for c in ev["classes"] if isinstance(c, str)]
        elif isinstance(ev.get("class_name"), str):
            classes = [ev["class_name"]]
    banner = f"{alert.type.upper()} {alert.severity}: {alert.summary}"
    highlight = Highlight(tracks, frozenset(classes), tuple(boxes), banner)
    start = alert.window.start_ns - int(settings.pre_roll_s * NS)
    end = max(alert.window.end_ns, key_ns) + int(settings.post_roll_s * NS)
    start = min(start, key_ns - int(settings.pre_roll_s * NS))
    longest = int(settings.max_clip_s * NS)
    if end - start > longest:  # cut around the key frame, staying inside the natural span
        start = max(start, min(key_ns - longest // 2, end - longest))
        end = start + longest
    return Plan(key_seq, key_ns, start, end, highlight, Highlight(tracks, frozenset(classes), (), banner))
