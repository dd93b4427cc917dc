"""Drift monitoring against the real broker: a darkened camera drifts, a normal one does not."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import simplejpeg
from prometheus_client import REGISTRY

from schemas.alert import AlertRecord
from schemas.frame import FrameMeta
from sightline.drift import run_drift
from streams.kafka import make_producer
from tests.conftest import Stack
from tests.helpers import read_topic

BASELINE, RECENT = 100, 120


def _vtest_frames(path: Path, n: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while len(frames) < n:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


def test_darkened_camera_drifts_and_a_normal_one_does_not(stack: Stack, vtest_path: Path) -> None:
    config = stack.fresh_config("drift")
    config.drift.group_id = f"{config.topics.frames.name}-drift"
    config.drift.baseline_size, config.drift.window_size, config.drift.evaluate_every = BASELINE, 60, 20
    frames = _vtest_frames(vtest_path, BASELINE + RECENT)
    assert len(frames) == BASELINE + RECENT
    producer = make_producer(config.kafka)
    start_ns = time.time_ns()
    for seq, frame in enumerate(frames):
        dark = np.clip(frame.astype(np.int16) - 100, 0, 255).astype(np.uint8) if seq >= BASELINE else frame
        for camera, image in (("normal", frame), ("dark", dark)):
            h, w = image.shape[:2]
            meta = FrameMeta(camera, seq, start_ns + seq * 100_000_000, w, h)
            jpeg = simplejpeg.encode_jpeg(image, 85, colorspace="BGR")
            topic = config.topics.frames.name
            producer.produce(topic, key=camera.encode(), value=jpeg, headers=meta.headers())
        producer.poll(0)
    assert producer.flush(30) == 0

    stats = run_drift(config, threading.Event(), max_idle_s=3)
    assert stats.frames == 2 * len(frames)

    alerts = [AlertRecord.decode(m.value()) for m in read_topic(config, config.topics.alerts.name)]
    by_camera = Counter(a.camera_id for a in alerts)
    assert by_camera["normal"] == 0, [a.summary for a in alerts if a.camera_id == "normal"]
    dark_alerts = [a for a in alerts if a.camera_id == "dark"]
    assert {a.rule for a in dark_alerts} >= {"drift:brightness"}, [a.summary for a in dark_alerts]
    assert len(dark_alerts) == len({a.rule for a in dark_alerts}), "one alert per feature and episode"
    brightness = next(a for a in dark_alerts if a.rule == "drift:brightness")
    assert brightness.type == "drift" and brightness.evidence["score"] >= config.drift.ks_threshold
    assert brightness.evidence["recent_mean"] < 0.6 * brightness.evidence["baseline_mean"]

    def score(camera: str) -> float | None:
        return REGISTRY.get_sample_value("sightline_drift_score", {"camera": camera, "feature": "brightness"})

    assert score("dark") is not None and score("dark") >= 0.9
    assert score("normal") is not None

    # Replaying the same input raises the same alert ids (webhook dedup relies on it).
    config.drift.group_id += "-replay"
    run_drift(config, threading.Event(), max_idle_s=3)
    replayed = [AlertRecord.decode(m.value()) for m in read_topic(config, config.topics.alerts.name)]
    assert {a.alert_id for a in replayed} == {a.alert_id for a in alerts}
