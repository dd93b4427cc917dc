"""Building the detections record and its headers: columnar arrays straight to JSON bytes.

orjson serialises numpy arrays natively, so a frame's boxes go from the tracker's arrays to bytes
with no per-box Python objects (the old path built lists of floats and ran ``json.dumps``).
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson
import supervision as sv
from confluent_kafka import Message

from inference.wire import wire_columns
from schemas.frame import FrameMeta

_NUMPY = orjson.OPT_SERIALIZE_NUMPY


@dataclass(frozen=True, slots=True)
class BatchTiming:
    """What the record says about how its batch ran (milliseconds, whole batch)."""

    preprocess_ms: float
    inference_ms: float
    batch_size: int


def detections_columns(detections: sv.Detections) -> dict[str, object]:
    """The record's ``detections`` object (``inference.wire.wire_columns``, see
    docs/wire-format.md): missing columns as lists of ``None``. Class names come with the
    detections (``inference.postprocess.common.finalize`` sets them)."""
    n = len(detections)
    columns: dict[str, object] = wire_columns(detections)
    if columns["class_name"] is not None:  # orjson writes numeric arrays only
        columns["class_name"] = columns["class_name"].tolist()  # type: ignore[attr-defined]
    return {key: [None] * n if value is None else value for key, value in columns.items()}


def detections_record(
    msg: Message,
    meta: FrameMeta,
    detections: sv.Detections,
    *,
    model: tuple[str, str],
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
        "detections": detections_columns(detections),
    }
    return orjson.dumps(record, option=_NUMPY)


def detections_headers(meta: FrameMeta) -> list[tuple[str, bytes]]:
    return [
        ("schema-version", b"1"),
        ("camera-id", meta.camera_id.encode()),
        ("seq", str(meta.seq).encode()),
        ("content-type", b"application/json"),
    ]
