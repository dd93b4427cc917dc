"""TF Object Detection API SSD: num_detections, boxes (ymin, xmin, ymax, xmax in 0..1), scores, classes.

NMS runs inside the graph; class ids are raw TF ids (1-based), shifted by ``manifest.class_offset``.
"""

from __future__ import annotations

import numpy as np

from inference.manifest import ModelManifest
from inference.postprocess.common import Candidates

NEEDS_NMS = False
_ROLES = ("num", "boxes", "scores", "classes")


def _by_role(outputs: list[np.ndarray], names: list[str]) -> dict[str, np.ndarray]:
    """Match outputs to roles by name; falls back to the TF OD API's own order."""
    if len(names) == len(outputs):
        found = {
            role: out for role in _ROLES for name, out in zip(names, outputs, strict=True) if role in name
        }
        if len(found) == len(_ROLES):
            return found
    return dict(zip(_ROLES, outputs, strict=True))


def parse(
    outputs: list[np.ndarray], manifest: ModelManifest, score_threshold: float, input_size: tuple[int, int]
) -> Candidates:
    """Valid rows (index < num_detections) above threshold, boxes scaled to model-input pixels."""
    o = _by_role(outputs, manifest.output_names)
    valid = np.arange(o["scores"].shape[1])[None, :] < o["num"].reshape(-1, 1)
    b, a = np.nonzero(valid & (o["scores"] > score_threshold))
    w, h = input_size
    yxyx = o["boxes"][b, a]
    xyxy = (yxyx[:, [1, 0, 3, 2]] * np.array([w, h, w, h], np.float32)).astype(np.float32)
    cls = np.rint(o["classes"][b, a]).astype(np.int64) - manifest.class_offset
    return Candidates(b, xyxy, o["scores"][b, a], cls)
