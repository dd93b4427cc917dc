"""``sv.Detections`` <-> JSON-able dict for Kafka messages.

Columnar lists (not one dict per box) keep messages small and let both directions stay vectorised.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import supervision as sv

WireDetections = dict[str, Any]


def wire_columns(detections: sv.Detections, xyxy_decimals: int = 1, conf_decimals: int = 4) -> dict[str, Any]:
    """The columns of ``to_wire`` as rounded numpy arrays (orjson writes them without per-box
    Python objects); columns the detections lack are ``None``."""
    n = len(detections)
    names = detections.data.get("class_name")

    def column(values: Any, dtype: type, decimals: int | None = None) -> np.ndarray | None:
        if values is None:
            return None
        array = np.asarray(values, dtype)
        return array.round(decimals) if decimals is not None else array

    return {
        "xyxy": column(detections.xyxy, np.float64, xyxy_decimals).reshape(n, 4),
        "confidence": column(detections.confidence, np.float64, conf_decimals),
        "class_id": column(detections.class_id, np.int64),
        "class_name": np.asarray(names).astype(str) if names is not None else None,
        "tracker_id": column(detections.tracker_id, np.int64),
    }


def to_wire(detections: sv.Detections, xyxy_decimals: int = 1, conf_decimals: int = 4) -> WireDetections:
    """``{"xyxy", "confidence", "class_id", "class_name", "tracker_id"}``; ``tracker_id`` is ``None``
    when the detections were not tracked, ``class_name`` entries are ``None`` when unknown."""
    n = len(detections)
    columns = wire_columns(detections, xyxy_decimals, conf_decimals)
    wire = {key: value.tolist() if value is not None else [None] * n for key, value in columns.items()}
    if columns["tracker_id"] is None:
        wire["tracker_id"] = None
    return wire


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
