"""Live-view frames: find the frame a detections record refers to, draw boxes, zones and lines."""

from __future__ import annotations

import logging
import threading
import uuid
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import redis
import simplejpeg
import yaml
from confluent_kafka import Consumer, TopicPartition

from schemas.detections import DetectionsRecord
from sightline.api.errors import DependencyDown
from sightline.config import SightlineConfig
from sightline.config.alerts import CameraRules, RulesSettings
from streams.claimcheck import ClaimCheckStore
from streams.health import Health
from streams.kafka import consumer_config

log = logging.getLogger(__name__)

ZONE_COLOR = (0, 200, 255)
LINE_COLOR = (255, 0, 255)


def _palette(key: int) -> tuple[int, int, int]:
    """A stable, distinct colour per track (or class) id."""
    hue = (key * 47) % 180
    bgr = cv2.cvtColor(np.uint8([[[hue, 220, 255]]]), cv2.COLOR_HSV2BGR)[0, 0]
    return int(bgr[0]), int(bgr[1]), int(bgr[2])


def camera_rules(config: SightlineConfig) -> dict[str, CameraRules]:
    """Rules per camera from `alerts.rules` or `alerts.rules_file`; an unreadable file means none."""
    rules = config.alerts.rules
    if rules is None and config.alerts.rules_file:
        try:
            rules = RulesSettings.model_validate(yaml.safe_load(Path(config.alerts.rules_file).read_text()))
        except Exception as exc:  # noqa: BLE001 - the live view still works without overlays
            log.warning("live view: cannot read rules file %s: %s", config.alerts.rules_file, exc)
    return {c.camera: c for c in rules.cameras} if rules else {}


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
    """Boxes with `#track class conf` labels, then zones and lines, on a copy of the frame."""
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
    for xyxy, conf, cls_id, name, track in zip(
        d.xyxy, d.confidence, d.class_id, d.class_name, d.tracker_id, strict=True
    ):
        x1, y1, x2, y2 = (int(round(v)) for v in xyxy)
        color = _palette(track if track is not None and track >= 0 else cls_id + 1000)
        cv2.rectangle(out, (x1, y1), (x2, y2), color, 2)
        label = f"{'#' + str(track) + ' ' if track is not None and track >= 0 else ''}{name} {conf:.2f}"
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
        top = max(0, y1 - th - base - 2)
        cv2.rectangle(out, (x1, top), (x1 + tw + 4, top + th + base + 2), color, -1)
        cv2.putText(
            out, label, (x1 + 2, top + th + 1), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA
        )
    return out


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
