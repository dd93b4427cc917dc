"""Offline batch mode's overlapped stages give exactly what the serial detector gives, in order."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from inference.detector import Detector
from inference.registry import ModelRegistry
from sightline.assets import media_path
from sightline.batch import detections_per_batch


def test_overlapped_stages_match_serial_detect(model_registry: Path) -> None:
    detector = Detector.from_registry(ModelRegistry(model_registry), "nanodet-m", max_batch=4)
    staged = list(detections_per_batch(media_path("bikes.mp4"), detector, batch=3, limit=14))
    frames = [f for chunk, _, _ in staged for f in chunk]
    assert [index for index, _, _ in frames] == list(range(14))
    serial, _ = detector.detect([image for _, _, image in frames])
    got = [d for _, results, _ in staged for d in results]
    assert len(got) == 14 and sum(len(d) for d in got) > 0
    for mine, theirs in zip(got, serial, strict=True):
        np.testing.assert_allclose(mine.xyxy, theirs.xyxy, atol=1e-3)
        np.testing.assert_array_equal(mine.class_id, theirs.class_id)
