"""Raw model outputs for a batch -> ``list[sv.Detections]`` in original-frame pixels, dispatched by format."""

from __future__ import annotations

from types import ModuleType

import numpy as np
import supervision as sv

from inference.manifest import ModelManifest
from inference.postprocess import nanodet, ssd_tf, yolo_nms, yolov5, yolov8
from inference.postprocess.common import Candidates, finalize
from inference.preprocess import BatchTransform

PARSERS: dict[str, ModuleType] = {
    "nanodet": nanodet,
    "yolov5": yolov5,
    "yolov8": yolov8,
    "yolo_nms": yolo_nms,
    "ssd_tf": ssd_tf,
}

__all__ = ["PARSERS", "Candidates", "postprocess"]


def postprocess(
    outputs: list[np.ndarray],
    manifest: ModelManifest,
    transform: BatchTransform,
    score_threshold: float | None = None,
    nms_iou: float | None = None,
    max_detections: int = 300,
    input_size: tuple[int, int] | None = None,
) -> list[sv.Detections]:
    """Parse ``outputs`` of one batch; thresholds default to the manifest's.

    ``input_size`` is the (w, h) the batch really ran at (dynamic-H/W models), the manifest's by default.
    NMS runs only for formats without NMS inside the graph.
    """
    parser = PARSERS[manifest.format]
    threshold = manifest.score_threshold if score_threshold is None else score_threshold
    candidates = parser.parse(outputs, manifest, threshold, input_size or manifest.input_size)
    iou = (manifest.nms_iou if nms_iou is None else nms_iou) if parser.NEEDS_NMS else None
    return finalize(candidates, transform, manifest.labels, iou, max_detections)
