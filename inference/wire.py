"""``sv.Detections`` <-> JSON-able dict for Kafka messages.

Columnar lists (not one dict per box) keep messages small and let both directions stay vectorised.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import supervision as sv

WireDetections = dict[str, Any]


def to_wire(detections: sv.Detections, xyxy_decimals: int = 1, conf_decimals: int = 4) -> WireDetections:
    """``{"xyxy", "confidence", "class_id", "class_name", "tracker_id"}``; ``tracker_id`` is ``None``
    when the detections were not tracked, ``class_name`` entries are ``None`` when unknown."""
    n = len(detections)
    names = detections.data.get("class_name")
    return {
        "xyxy": np.asarray(detections.xyxy, np.float64).round(xyxy_decimals).tolist(),
        "confidence": (
            np.asarray(detections.confidence, np.float64).round(conf_decimals).tolist()
            if detections.confidence is not None
            else [None] * n
        ),
        "class_id": (
            np.asarray(detections.class_id, np.int64).tolist()
            if detections.class_id is not None
            else [None] * n
        ),
        "class_name": np.asarray(names).astype(str).tolist() if names is not None else [None] * n,
        "tracker_id": (
            np.asarray(detections.tracker_id, np.int64).tolist()
            if detections.tracker_id is not None
            else None
        ),
    }


def from_wire(payload: WireDetections) -> sv.Detections:
    """Inverse of ``to_wire`` (up to rounding); tolerates missing optional keys."""
    xyxy = np.asarray(payload.get("xyxy") or np.empty((0, 4)), np.float32).reshape(-1, 4)
    n = len(xyxy)

    def column(key: str, dtype: type) -> np.ndarray | None:
        values = payload.get(key)
        if values is None or len(values) != n or None in values:
            return None
        return np.asarray(values, dtype).reshape(n)

    names = payload.get("class_name")
    data = {"class_name": np.asarray(names, dtype=str)} if names and None not in names else {}
    return sv.Detections(
        xyxy=xyxy,
        confidence=column("confidence", np.float32),
        class_id=column("class_id", np.int64),
        tracker_id=column("tracker_id", np.int64),
        data=data,
    )
