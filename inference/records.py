"""Building the detections record and its headers through the one codec (``schemas.detections``)."""

from __future__ import annotations

from dataclasses import dataclass

import supervision as sv
from confluent_kafka import Message

from inference.wire import to_columns
from schemas.detections import DetectionColumns, DetectionsRecord, FrameRef, ModelRef, Skipped, Timing
from schemas.frame import FrameMeta


@dataclass(frozen=True, slots=True)
class BatchTiming:
    """What the record says about how its batch ran (milliseconds, whole batch)."""

    preprocess_ms: float
    inference_ms: float
    batch_size: int


def _record(
    source: Message | FrameRef,
    meta: FrameMeta,
    *,
    model: tuple[str, str],
    produced_ns: int,
    detections: DetectionColumns,
    timing: Timing | None = None,
    skipped: Skipped | None = None,
) -> bytes:
    return DetectionsRecord(
        camera_id=meta.camera_id,
        seq=meta.seq,
        capture_ns=meta.capture_ns,
        stream_ts=meta.stream_ts,
        width=meta.width,
        height=meta.height,
        frame=source if isinstance(source, FrameRef) else _frame_ref(source, meta),
        model=ModelRef(name=model[0], version=model[1]),
        timing=timing,
        produced_ns=produced_ns,
        detections=detections,
        skipped=skipped,
    ).encode()


def _frame_ref(msg: Message, meta: FrameMeta) -> FrameRef:
    return FrameRef(
        topic=msg.topic(), partition=msg.partition(), offset=msg.offset(), claim_check=meta.claim_check
    )


def detections_record(
    source: Message | FrameRef,
    meta: FrameMeta,
    detections: sv.Detections,
    *,
    model: tuple[str, str],
    queue_ms: float,
    timing: BatchTiming,
    produced_ns: int,
) -> bytes:
    """The detections record for one frame the model ran on, as JSON bytes. `source`: the frame
    record it came from, or where else the frame can be found again (batch mode: a file)."""
    return _record(
        source,
        meta,
        model=model,
        produced_ns=produced_ns,
        detections=to_columns(detections),
        timing=Timing(
            queue_ms=round(max(0.0, queue_ms), 3),
            preprocess_ms=round(timing.preprocess_ms, 3),
            inference_ms=round(timing.inference_ms, 3),
            batch_size=timing.batch_size,
        ),
    )


def skipped_record(
    msg: Message, meta: FrameMeta, skipped: Skipped, *, model: tuple[str, str], produced_ns: int
) -> bytes:
    """The record of a frame the worker skipped (no boxes, no timing): its `seq` stays accounted
    for, and readers know it was not seen rather than seen empty."""
    return _record(
        msg,
        meta,
        model=model,
        produced_ns=produced_ns,
        detections=DetectionColumns.empty(),
        skipped=skipped,
    )


def detections_headers(meta: FrameMeta) -> list[tuple[str, bytes]]:
    return [
        ("schema-version", b"1"),
        ("camera-id", meta.camera_id.encode()),
        ("seq", str(meta.seq).encode()),
        ("content-type", b"application/json"),
    ]
