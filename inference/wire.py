"""``sv.Detections`` <-> the detections codec's columns (``schemas.detections.DetectionColumns``).

The model side speaks supervision; the wire speaks the schema's columns. These two functions are
the only bridge, so the worker, the API and batch mode write the same record.
"""

from __future__ import annotations

import numpy as np
import supervision as sv

from schemas.detections import DetectionColumns


def to_columns(detections: sv.Detections) -> DetectionColumns:
    """Columns of the detections; untracked detections (``tracker_id`` None) stay untracked.
    Class names come with the detections (``inference.postprocess.common.finalize`` sets them)."""
    n = len(detections)
    names = detections.data.get("class_name")
    return DetectionColumns.build(
        detections.xyxy,
        detections.confidence if detections.confidence is not None else np.ones(n),
        detections.class_id if detections.class_id is not None else np.full(n, -1),
        names if names is not None else np.full(n, ""),
        detections.tracker_id,
    )


def from_columns(columns: DetectionColumns) -> sv.Detections:
    """Inverse of ``to_columns`` (up to the wire's rounding)."""
    return sv.Detections(
        xyxy=columns.xyxy.astype(np.float32),
        confidence=columns.confidence.astype(np.float32),
        class_id=columns.class_id,
        tracker_id=columns.tracker_id if columns.tracked else None,
        data={"class_name": columns.class_name} if len(columns) else {},
    )
