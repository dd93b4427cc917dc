"""Drawing detections on frames: one code for the live view and the evidence of alerts.

Boxes and labels are drawn by supervision's annotators with one palette colour per track (or,
for an untracked box, per class), so a tracked object keeps its colour from frame to frame and
from the live view to an alert's snapshot and clip. Zones and counting lines come from the rules
the alert processors load. Evidence adds a highlight around the object that caused the alert and
a banner naming the alert; the live view draws neither.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import simplejpeg
import supervision as sv

from alerts.rules.loader import rules_for
from alerts.settings import CameraRules
from schemas.detections import DetectionsRecord
from schemas.frame import sniff_encoding
from sightline.config import SightlineConfig
from streams.config_files import ConfigError

log = logging.getLogger(__name__)

ZONE_COLOR = (0, 200, 255)
LINE_COLOR = (255, 0, 255)
HIGHLIGHT_COLOR = (0, 0, 255)  # BGR red, outside the box so the box keeps its track colour
HIGHLIGHT_MARGIN = 6
HIGHLIGHT_THICKNESS = 4

PALETTE = sv.ColorPalette.DEFAULT
BOXES = sv.BoxAnnotator(color=PALETTE, thickness=3)
LABELS = sv.LabelAnnotator(color=PALETTE, text_color=sv.Color.BLACK, text_scale=0.45, text_padding=4)


def color_key(class_id: int, tracker_id: int | None) -> int:
    """Palette index of a box: its track id when tracked, else its class id."""
    return tracker_id if tracker_id is not None and tracker_id >= 0 else class_id


def box_color(class_id: int, tracker_id: int | None) -> tuple[int, int, int]:
    """BGR colour a box is drawn in (tests look for it in served frames, snapshots and clips)."""
    return PALETTE.by_idx(color_key(class_id, tracker_id)).as_bgr()


def camera_rules(config: SightlineConfig) -> dict[str, CameraRules]:
    """Rules per camera, loaded as the alert processors load them; an unreadable file means none."""
    try:
        rules = rules_for(config.alerts)
    except (ConfigError, OSError) as exc:  # frames are still drawn, without zones and lines
        log.warning("cannot read the rules file, drawing no zones or lines: %s", exc)
        return {}
    return {c.camera: c for c in rules.cameras}


def overlays(rules: CameraRules | None) -> list[dict[str, Any]]:
    """Zones (polygons) and counting lines of a camera's rules, named, for drawing."""
    if rules is None:
        return []
    shapes: list[dict[str, Any]] = []
    for lane in rules.lanes:
        if lane.zone:
            shapes.append({"kind": "zone", "name": lane.name, "points": lane.zone})
        if lane.line:
            shapes.append({"kind": "line", "name": lane.name, "points": [lane.line.start, lane.line.end]})
    for rule in rules.defects:
        if rule.roi:
            shapes.append({"kind": "zone", "name": rule.name, "points": rule.roi})
    for rule in [*rules.anomalies, *rules.thresholds]:
        if rule.zone:
            shapes.append({"kind": "zone", "name": rule.name, "points": rule.zone})
    return shapes


@dataclass(frozen=True)
class Highlight:
    """What caused an alert, to be marked on its frames: boxes of these tracks (or, with no track,
    of these classes), plus boxes the alert itself names (drawn even where no detection matches),
    and a banner line at the top."""

    track_ids: frozenset[int] = frozenset()
    classes: frozenset[str] = frozenset()
    boxes: Sequence[Sequence[float]] = field(default_factory=tuple)
    banner: str = ""

    def mask(self, record: DetectionsRecord) -> np.ndarray:
        d = record.detections
        if self.track_ids:
            return np.isin(d.tracker_id, list(self.track_ids))
        if self.classes:
            return np.isin(d.class_name, list(self.classes))
        return np.zeros(len(d), bool)


def decode_frame(payload: bytes) -> np.ndarray:
    """A frame record's image (JPEG, or PNG) as BGR pixels at full size."""
    if sniff_encoding(payload) == "jpeg":
        return simplejpeg.decode_jpeg(payload, colorspace="BGR", strict=False)
    image = cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("undecodable frame")
    return image


def _shapes(out: np.ndarray, shapes: list[dict[str, Any]]) -> None:
    for shape in shapes:
        pts = np.asarray(shape["points"], np.int32)
        color = ZONE_COLOR if shape["kind"] == "zone" else LINE_COLOR
        if shape["kind"] == "zone":
            layer = out.copy()
            cv2.fillPoly(layer, [pts], color)
            cv2.addWeighted(layer, 0.15, out, 0.85, 0, dst=out)
            cv2.polylines(out, [pts], True, color, 2, cv2.LINE_AA)
        else:
            cv2.line(out, tuple(pts[0]), tuple(pts[1]), color, 2, cv2.LINE_AA)
        cv2.putText(out, shape["name"], tuple(pts[0]), cv2.FONT_HERSHEY_SIMPLEX, 0.5, color, 1, cv2.LINE_AA)


def _frame_boxes(out: np.ndarray, boxes: Sequence[Sequence[float]]) -> None:
    h, w = out.shape[:2]
    for x1, y1, x2, y2 in boxes:
        m = HIGHLIGHT_MARGIN
        top_left = (max(0, int(x1) - m), max(0, int(y1) - m))
        bottom_right = (min(w - 1, int(x2) + m), min(h - 1, int(y2) + m))
        cv2.rectangle(out, top_left, bottom_right, HIGHLIGHT_COLOR, HIGHLIGHT_THICKNESS)


def _banner(out: np.ndarray, banner: str) -> None:
    if banner:
        cv2.rectangle(out, (0, 0), (out.shape[1], 24), (0, 0, 0), -1)
        cv2.putText(
            out, banner[:160], (6, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA
        )


def draw(
    image: np.ndarray,
    record: DetectionsRecord,
    shapes: list[dict[str, Any]],
    highlight: Highlight | None = None,
) -> np.ndarray:
    """Zones and lines, then boxes with `#track class conf` labels on top, on a copy of the frame;
    with a `highlight`, the alert's objects framed in red (under the labels) and its banner."""
    out = image.copy()
    _shapes(out, shapes)
    d = record.detections
    marked: list[Sequence[float]] = []
    if highlight is not None:
        marked = d.xyxy[highlight.mask(record)].tolist() if len(d) else []
        marked = marked or list(highlight.boxes)
    if len(d):
        detections = sv.Detections(
            xyxy=d.xyxy.astype(np.float32), confidence=d.confidence.astype(np.float32), class_id=d.class_id
        )
        keys = np.where(d.tracker_id >= 0, d.tracker_id, d.class_id)  # color_key, for every box at once
        labels = [
            f"{'#' + str(t) + ' ' if t >= 0 else ''}{name} {conf:.2f}"
            for name, conf, t in zip(
                d.class_name.tolist(), d.confidence.tolist(), d.tracker_id.tolist(), strict=True
            )
        ]
        out = BOXES.annotate(out, detections, custom_color_lookup=keys)
        _frame_boxes(out, marked)
        out = LABELS.annotate(out, detections, labels=labels, custom_color_lookup=keys)
    else:
        _frame_boxes(out, marked)
    if highlight is not None:
        _banner(out, highlight.banner)
    return out
