"""Live-view frames: find the frame a detections record refers to, draw boxes, zones and lines."""

from __future__ import annotations

import logging
import threading
import uuid
from typing import Any

import cv2
import numpy as np
import redis
import simplejpeg
import supervision as sv
from confluent_kafka import Consumer, TopicPartition

from alerts.rules.loader import rules_for
from alerts.settings import CameraRules
from schemas.detections import DetectionsRecord
from sightline.api.errors import DependencyDown
from sightline.config import SightlineConfig
from streams.claimcheck import ClaimCheckStore
from streams.config_files import ConfigError
from streams.health import Health
from streams.kafka import consumer_config

log = logging.getLogger(__name__)

ZONE_COLOR = (0, 200, 255)
LINE_COLOR = (255, 0, 255)


# Boxes and labels are drawn by supervision's annotators; one palette colour per track (or, for an
# untracked box, per class), so a tracked object keeps its colour from frame to frame.
PALETTE = sv.ColorPalette.DEFAULT
BOXES = sv.BoxAnnotator(color=PALETTE, thickness=3)
LABELS = sv.LabelAnnotator(color=PALETTE, text_color=sv.Color.BLACK, text_scale=0.45, text_padding=4)


def color_key(class_id: int, tracker_id: int | None) -> int:
    """Palette index of a box: its track id when tracked, else its class id."""
    return tracker_id if tracker_id is not None and tracker_id >= 0 else class_id


def box_color(class_id: int, tracker_id: int | None) -> tuple[int, int, int]:
    """BGR colour the live view draws this box in (tests look for it in the served frames)."""
    return PALETTE.by_idx(color_key(class_id, tracker_id)).as_bgr()


def camera_rules(config: SightlineConfig) -> dict[str, CameraRules]:
    """Rules per camera, loaded as the alert processors load them; an unreadable file means none."""
    try:
        rules = rules_for(config.alerts)
    except (ConfigError, OSError) as exc:  # the live view still works without overlays
        log.warning("live view: cannot read the rules file: %s", exc)
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
    for rule in [*rules.defects]:
        if rule.roi:
            shapes.append({"kind": "zone", "name": rule.name, "points": rule.roi})
    for rule in [*rules.anomalies, *rules.thresholds]:
        if rule.zone:
            shapes.append({"kind": "zone", "name": rule.name, "points": rule.zone})
    return shapes


def draw(image: np.ndarray, record: DetectionsRecord, shapes: list[dict[str, Any]]) -> np.ndarray:
    """Zones and lines, then boxes with `#track class conf` labels on top, on a copy of the frame."""
    out = image.copy()
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
    d = record.detections
    if not len(d):
        return out
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
    return LABELS.annotate(out, detections, labels=labels, custom_color_lookup=keys)


class FrameFetcher:
    """Reads one frame record back by (topic, partition, offset), or from the Redis claim check.

    While Kafka or Redis is down it raises `DependencyDown` (a 503) instead of hanging or failing.
    """

    def __init__(self, config: SightlineConfig, health: Health) -> None:
        self.config, self.health = config, health
        self._lock = threading.Lock()
        self._consumer: Consumer | None = None
        self._claims: ClaimCheckStore | None = None

    def fetch(self, record: DetectionsRecord, timeout: float = 3.0) -> bytes | None:
        ref = record.frame
        if ref.claim_check:
            if self._claims is None:
                self._claims = ClaimCheckStore(self.config.redis.url, self.config.frames.claim_check_ttl_s)
            try:
                return self._claims.get(ref.claim_check)
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                self.health.degraded("redis", f"{type(exc).__name__}: {exc}")
                raise DependencyDown("redis", str(exc)) from None
        if not self.health.is_up("kafka"):
            raise DependencyDown("kafka", "the broker does not answer")
        with self._lock:
            if self._consumer is None:
                conf = consumer_config(self.config.kafka, f"sightline-api-frames-{uuid.uuid4().hex[:12]}")
                self._consumer = Consumer(conf)
            self._consumer.assign([TopicPartition(ref.topic, ref.partition, ref.offset)])
            for msg in self._consumer.consume(1, timeout):
                if msg.error() is None and msg.offset() == ref.offset:
                    return msg.value()
        if not self.health.is_up("kafka"):  # the broker went away while we waited for the record
            raise DependencyDown("kafka", "the broker does not answer")
        return None

    def close(self) -> None:
        with self._lock:
            if self._consumer is not None:
                self._consumer.close()
                self._consumer = None
        if self._claims is not None:
            self._claims.close()


def render_jpeg(
    payload: bytes, record: DetectionsRecord, shapes: list[dict[str, Any]], quality: int
) -> bytes:
    if payload.startswith(b"\xff\xd8"):
        image = simplejpeg.decode_jpeg(payload, colorspace="BGR", strict=False)
    else:
        image = cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError("undecodable frame")
    return simplejpeg.encode_jpeg(draw(image, record, shapes), quality, colorspace="BGR")
