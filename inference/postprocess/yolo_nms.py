"""YOLO exports with NMS inside (e.g. Ultralytics ``end2end``/``nms=True``): ``[B, N, 6]`` rows of
x1, y1, x2, y2, score, class in input pixels; padded rows have score 0."""

from __future__ import annotations

import numpy as np

from inference.manifest import ModelManifest
from inference.postprocess.common import Candidates

NEEDS_NMS = False


def parse(
    outputs: list[np.ndarray], manifest: ModelManifest, score_threshold: float, input_size: tuple[int, int]
) -> Candidates:
    """Rows above ``score_threshold``; already de-duplicated by the model."""
    out = outputs[0]
    b, a = np.nonzero(out[..., 4] > score_threshold)
    rows = out[b, a]
    cls = np.rint(rows[:, 5]).astype(np.int64) - manifest.class_offset
    return Candidates(b, rows[:, :4].astype(np.float32), rows[:, 4], cls)
