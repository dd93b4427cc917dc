"""Synthetic detections for tests and the benchmark: objects walking straight paths."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from schemas.detections import DetectionColumns, DetectionsRecord, FrameRef, ModelRef, Timing

Box = tuple[tuple[float, float, float, float], float, str, int | None]
MODEL = ModelRef(name="synthetic", version="1")
TIMING = Timing(queue_ms=0.0, preprocess_ms=0.0, inference_ms=0.0, batch_size=1)


def record(
    camera_id: str,
    seq: int,
    capture_ns: int,
    boxes: Sequence[Box],
    *,
    width: int = 768,
    height: int = 576,
    frames_topic: str = "sightline.frames",
    produced_ns: int | None = None,
) -> DetectionsRecord:
    """One detections record; each box is ((x1, y1, x2, y2), confidence, class, tracker id).

    Returned as a consumer decodes it (boxes and confidences at the wire's precision), so the
    engine run offline on these records raises exactly what the processor raises on their bytes.
    """
    built = DetectionsRecord(
        camera_id=camera_id,
        seq=seq,
        capture_ns=capture_ns,
        width=width,
        height=height,
        frame=FrameRef(topic=frames_topic, partition=0, offset=seq, claim_check=None),
        model=MODEL,
        timing=TIMING,
        produced_ns=produced_ns if produced_ns is not None else capture_ns,
        detections=DetectionColumns.build(
            [b[0] for b in boxes],
            [b[1] for b in boxes],
            [0 for _ in boxes],
            [b[2] for b in boxes],
            [-1 if b[3] is None else b[3] for b in boxes],
        ),
    )
    return DetectionsRecord.decode(built.encode())


def box_at(x: float, y: float, w: float = 40.0, h: float = 90.0) -> tuple[float, float, float, float]:
    """A box whose bottom-centre anchor is (x, y)."""
    return (x - w / 2, y - h, x + w / 2, y)


@dataclass
class Walker:
    """An object moving in a straight line from `start` to `end` over `frames` frames."""

    tid: int
    cls: str
    start: tuple[float, float]
    end: tuple[float, float]
    first_frame: int
    frames: int
    confidence: float = 0.9

    def at(self, frame: int) -> Box | None:
        k = frame - self.first_frame
        if k < 0 or k >= self.frames:
            return None
        f = k / max(self.frames - 1, 1)
        x = self.start[0] + (self.end[0] - self.start[0]) * f
        y = self.start[1] + (self.end[1] - self.start[1]) * f
        return (box_at(x, y), self.confidence, self.cls, self.tid)


def scene(
    camera_id: str,
    walkers: Sequence[Walker],
    n_frames: int,
    *,
    start_ns: int = 1_700_000_000_000_000_000,
    fps: float = 10.0,
    first_seq: int = 0,
) -> Iterator[DetectionsRecord]:
    step = int(1e9 / fps)
    for f in range(n_frames):
        boxes = [b for w in walkers if (b := w.at(f)) is not None]
        yield record(camera_id, first_seq + f, start_ns + f * step, boxes)


def crossing_walkers(n: int, rng: random.Random, frames_per_walk: int, spacing: int) -> list[Walker]:
    """People walking top->bottom across y=288 on a 768x576 image, one every `spacing` frames."""
    out = []
    for i in range(n):
        x = rng.uniform(100, 668)
        end = (x + rng.uniform(-40, 40), 450.0)
        out.append(Walker(i + 1, "person", (x, 150.0), end, i * spacing, frames_per_walk))
    return out
