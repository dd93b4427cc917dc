"""Behavioural checks for fetched models: a model counts as good when it finds what we know is there."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import cv2

from inference.detector import Detector
from inference.manifest import infer_manifest


class VerificationError(RuntimeError):
    """A fetched model did not detect the known objects in the check image."""


def count_classes(onnx_path: Path, image: Path, **overrides: Any) -> Counter[str]:
    """Class-name counts of the model's detections on ``image`` (default thresholds)."""
    manifest = infer_manifest(onnx_path, onnx_path.stem, "verify", **overrides)
    frame = cv2.imread(str(image))
    if frame is None:
        raise VerificationError(f"cannot read {image}")
    with Detector.from_path(onnx_path, manifest, engine="cpu") as det:
        (found,), _ = det.detect([frame])
    return Counter(str(n) for n in found.data["class_name"])


def require(counts: Counter[str], wanted: dict[str, int], what: str) -> None:
    """Raise unless ``counts`` has at least ``wanted[name]`` of every name."""
    missing = {k: v for k, v in wanted.items() if counts.get(k, 0) < v}
    if missing:
        raise VerificationError(f"{what}: expected at least {wanted}, found {dict(counts)}")
