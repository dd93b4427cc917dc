"""Offline batch mode: a recorded video through the same engine and output decoders, no Kafka.

Decoding runs on its own thread so the model never waits for frames.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import av
import numpy as np
from tqdm import tqdm

from inference.detector import Detector
from inference.tracking import CameraTrackers
from inference.wire import to_wire

_END = object()


def _frames(path: Path, out: queue.Queue[object]) -> None:
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for index, frame in enumerate(container.decode(stream)):
                out.put((index, float(frame.time or 0.0), frame.to_ndarray(format="bgr24")))
    finally:
        out.put(_END)


def _batches(path: Path, size: int) -> Iterator[list[tuple[int, float, np.ndarray]]]:
    frames: queue.Queue[object] = queue.Queue(maxsize=size * 4)
    threading.Thread(target=_frames, args=(path, frames), daemon=True, name="batch-decode").start()
    batch: list[tuple[int, float, np.ndarray]] = []
    while (item := frames.get()) is not _END:
        batch.append(item)  # type: ignore[arg-type]
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def run_batch(
    video: Path, detector: Detector, out: TextIO, *, batch: int, tracking: bool = True
) -> dict[str, float]:
    """Write one JSON line per frame (the detections record's fields); return throughput."""
    with av.open(str(video)) as container:
        total = container.streams.video[0].frames or None
    trackers = CameraTrackers(enabled=tracking)
    camera = video.stem
    started, count = time.perf_counter(), 0
    with tqdm(total=total, unit="frame", desc=video.name) as progress:
        for chunk in _batches(video, batch):
            results, timings = detector.detect([image for _, _, image in chunk])
            for (index, stream_ts, image), detections in zip(chunk, results, strict=True):
                tracked = trackers.update(camera, detections, stream_ts)
                wire = to_wire(tracked)
                line = {
                    "camera_id": camera, "seq": index, "stream_ts": stream_ts,
                    "width": image.shape[1], "height": image.shape[0],
                    "model": {"name": detector.manifest.name, "version": detector.manifest.version},
                    "detections": wire,
                }  # fmt: skip
                out.write(json.dumps(line, separators=(",", ":")) + "\n")
            count += len(chunk)
            progress.update(len(chunk))
    elapsed = time.perf_counter() - started
    return {"frames": count, "seconds": round(elapsed, 2), "fps": round(count / elapsed, 1)}
