"""YOLOv8/YOLO11 head ``[B, 4 + nc, anchors]``: cx, cy, w, h in input pixels, then class scores (no NMS)."""

from __future__ import annotations

import numpy as np
import supervision as sv

from inference.manifest import ModelManifest
from inference.postprocess.common import Candidates

NEEDS_NMS = True


def parse(
    outputs: list[np.ndarray], manifest: ModelManifest, score_threshold: float, input_size: tuple[int, int]
) -> Candidates:
    """Best class per anchor above ``score_threshold``, boxes converted to xyxy."""
    out = outputs[0]
    scores = out[:, 4:, :]
    best = scores.max(axis=1)
    b, a = np.nonzero(best > score_threshold)
    cls = scores[b, :, a].argmax(axis=1)
    xyxy = sv.xcycwh_to_xyxy(out[b, :4, a]).astype(np.float32)
    return Candidates(b, xyxy, best[b, a], cls - manifest.class_offset)
