"""Building the detections record and its headers: columnar arrays straight to JSON bytes.

orjson serialises numpy arrays natively, so a frame's boxes go from the tracker's arrays to bytes
with no per-box Python objects (the old path built lists of floats and ran ``json.dumps``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import orjson
import supervision as sv
from confluent_kafka import Message

from schemas.frame import FrameMeta

_NUMPY = orjson.OPT_SERIALIZE_NUMPY


@dataclass(frozen=True, slots=True)
class BatchTiming:
    """What the record says about how its batch ran (milliseconds, whole batch)."""

    preprocess_ms: float
    inference_ms: float
    batch_size: int


def detections_columns(detections: sv.Detections, labels: list[str]) -> dict[str, object]:
    """The wire's columnar ``detections`` object (see docs/wire-format.md), as numpy arrays.

    Coordinates are rounded to 0.1 px and scores to 1e-4: finer digits are noise and cost bytes.
    """
    n = len(detections)
    class_id = np.asarray(detections.class_id, np.int64) if detections.class_id is not None else None
    names = detections.data.get("class_name")
    if names is not None:
        class_name: object = np.asarray(names).astype(str).tolist()
    elif class_id is not None:
        class_name = [labels[c] if 0 <= c < len(labels) else str(c) for c in class_id.tolist()]
    else:
        class_name = [None] * n
    return {
        "xyxy": np.asarray(detections.xyxy, np.float32).reshape(n, 4).round(1),
        "confidence": (
            np.asarray(detections.confidence, np.float32).round(4)
            if detections.confidence is not None
            else [None] * n
        ),
        "class_id": class_id if class_id is not None else [None] * n,
        "class_name": class_name,
        "tracker_id": (
            np.asarray(detections.tracker_id, np.int64) if detections.tracker_id is not None else [None] * n
        ),
    }


def detections_record(
    msg: Message,
    meta: FrameMeta,
    detections: sv.Detections,
    *,
    model: tuple[str, str],
    labels: list[str],
    queue_ms: float,
    timing: BatchTiming,
    produced_ns: int,
) -> bytes:
    """The detections record for one frame (schema version 1), as JSON bytes."""
    record = {
        "schema_version": 1,
        "camera_id": meta.camera_id,
        "seq": meta.seq,
        "capture_ns": meta.capture_ns,
        "stream_ts": meta.stream_ts,
        "width": meta.width,
        "height": meta.height,
        "frame": {
            "topic": msg.topic(),
            "partition": msg.partition(),
            "offset": msg.offset(),
            "claim_check": meta.claim_check,
        },
        "model": {"name": model[0], "version": model[1]},
        "timing": {
            "queue_ms": round(max(0.0, queue_ms), 3),
            "preprocess_ms": round(timing.preprocess_ms, 3),
            "inference_ms": round(timing.inference_ms, 3),
            "batch_size": timing.batch_size,
        },
        "produced_ns": produced_ns,
        "detections": detections_columns(detections, labels),
    }
    return orjson.dumps(record, option=_NUMPY)


def detections_headers(meta: FrameMeta) -> list[tuple[str, bytes]]:
    return [
        ("schema-version", b"1"),
        ("camera-id", meta.camera_id.encode()),
        ("seq", str(meta.seq).encode()),
        ("content-type", b"application/json"),
    ]
