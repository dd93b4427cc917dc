"""YOLOv5 head ``[B, anchors, 5 + nc]``: cx, cy, w, h, objectness, class probs; score = obj * prob."""

from __future__ import annotations

import numpy as np
import supervision as sv

from inference.manifest import ModelManifest
from inference.postprocess.common import Candidates

NEEDS_NMS = True


def parse(
    outputs: list[np.ndarray], manifest: ModelManifest, score_threshold: float, input_size: tuple[int, int]
) -> Candidates:
    """Objectness pre-filter (cheap, obj >= score), then best ``obj * prob`` class per anchor."""
    out = outputs[0]
    b, a = np.nonzero(out[..., 4] > score_threshold)
    rows = out[b, a]
    scores = rows[:, 5:] * rows[:, 4:5]
    cls = scores.argmax(axis=1)
    best = scores[np.arange(len(cls)), cls]
    keep = best > score_threshold
    xyxy = sv.xcycwh_to_xyxy(rows[keep, :4]).astype(np.float32)
    return Candidates(b[keep], xyxy, best[keep], cls[keep] - manifest.class_offset)
