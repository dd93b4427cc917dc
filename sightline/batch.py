"""Offline batch mode: a recorded video through the same engine and output decoders, no Kafka.

Four stages overlap so the engine rarely waits: decoding on its own thread, ``Detector.prepare``
(resize, letterbox, normalise) on another, ``Detector.infer`` on a third, and ``finish`` (NMS,
box mapping), tracking and the JSON lines on the calling thread. PyAV, OpenCV, NumPy and ONNX
Runtime release the GIL, so the stages really run in parallel.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TextIO

import av
import numpy as np
import supervision as sv
from tqdm import tqdm

from inference.detector import Detector, PreparedBatch
from inference.records import BatchTiming, detections_record
from inference.tracking import CameraTrackers
from schemas.detections import FrameRef
from schemas.frame import FrameMeta

_END = object()
IN_FLIGHT = 2  # batches between prepare and finish: enough to keep the engine busy, bounded memory

Frame = tuple[int, float, np.ndarray]
Inferred = list[tuple[PreparedBatch, list[np.ndarray], float]]  # chunk, outputs, engine ms


def _frames(path: Path, out: queue.Queue[object], stop: threading.Event, limit: int | None) -> None:
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for index, frame in enumerate(container.decode(stream)):
                if stop.is_set() or (limit is not None and index >= limit):
                    break
                out.put((index, float(frame.time or 0.0), frame.to_ndarray(format="bgr24")))
    finally:
        out.put(_END)


def _batches(path: Path, size: int, limit: int | None = None) -> Iterator[list[Frame]]:
    frames: queue.Queue[object] = queue.Queue(maxsize=size * 4)
    stop = threading.Event()
    decoder = threading.Thread(
        target=_frames, args=(path, frames, stop, limit), daemon=True, name="batch-decode"
    )
    decoder.start()
    batch: list[Frame] = []
    try:
        while (item := frames.get()) is not _END:
            batch.append(item)  # type: ignore[arg-type]
            if len(batch) == size:
                yield batch
                batch = []
        if batch:
            yield batch
    finally:  # a consumer that stops early must not leave the decoder blocked on a full queue
        stop.set()
        while decoder.is_alive():
            with contextlib.suppress(queue.Empty):
                frames.get(timeout=0.1)


def _run_engine(detector: Detector, prepared: Future[list[PreparedBatch]]) -> Inferred:
    """Engine stage: each chunk's outputs; its input buffer goes back to the pool at once."""
    done: Inferred = []
    for chunk in prepared.result():
        started = time.perf_counter()
        try:
            done.append((chunk, detector.infer(chunk), (time.perf_counter() - started) * 1e3))
        finally:
            chunk.release()
    return done


def detections_per_batch(
    video: Path, detector: Detector, batch: int, limit: int | None = None
) -> Iterator[tuple[list[Frame], list[sv.Detections], BatchTiming]]:
    """(frames, detections, timing) per batch, in video order, with prepare/infer/finish overlapped."""
    with (
        ThreadPoolExecutor(1, thread_name_prefix="batch-prepare") as prepare,
        ThreadPoolExecutor(1, thread_name_prefix="batch-engine") as engine,
    ):
        pending: deque[tuple[list[Frame], Future[Inferred]]] = deque()

        def finish_oldest() -> tuple[list[Frame], list[sv.Detections], BatchTiming]:
            chunk, inferred = pending.popleft()
            results: list[sv.Detections | None] = [None] * len(chunk)
            for prepared, outputs, _ in inferred.result():
                for i, det in zip(prepared.indices.tolist(), detector.finish(prepared, outputs), strict=True):
                    results[i] = det
            timing = BatchTiming(
                preprocess_ms=sum(p.prepare_ms for p, _, _ in inferred.result()),
                inference_ms=sum(ms for _, _, ms in inferred.result()),
                batch_size=len(chunk),
            )
            return chunk, [r for r in results if r is not None], timing

        try:
            for chunk in _batches(video, batch, limit):
                prepared = prepare.submit(detector.prepare, [image for _, _, image in chunk])
                pending.append((chunk, engine.submit(_run_engine, detector, prepared)))
                if len(pending) > IN_FLIGHT:
                    yield finish_oldest()
            while pending:
                yield finish_oldest()
        finally:
            for _, future in pending:
                future.cancel()


def run_batch(
    video: Path,
    detector: Detector,
    out: TextIO,
    *,
    batch: int,
    tracking: bool = True,
    limit: int | None = None,
    progress: bool = True,
) -> dict[str, float]:
    """Write one detections record per frame, as JSON lines (the detections topic's records, so
    `sightline alerts test-rules --from` reads them); return throughput. The camera is the video's
    name, capture time its presentation time, and the frame reference `file:NAME` at the index."""
    with av.open(str(video)) as container:
        total = container.streams.video[0].frames or None
    if limit is not None and total is not None:
        total = min(total, limit)
    trackers = CameraTrackers(enabled=tracking)
    camera = video.stem
    model = (detector.manifest.name, detector.manifest.version)
    started, count = time.perf_counter(), 0
    with tqdm(total=total, unit="frame", desc=video.name, disable=not progress) as bar:
        for chunk, results, timing in detections_per_batch(video, detector, batch, limit):
            for (index, stream_ts, image), detections in zip(chunk, results, strict=True):
                tracked = trackers.update(camera, detections, stream_ts)
                h, w = image.shape[:2]
                meta = FrameMeta(camera, index, int(stream_ts * 1e9), w, h, stream_ts=stream_ts)
                ref = FrameRef(topic=f"file:{video.name}", partition=0, offset=index)
                line = detections_record(
                    ref, meta, tracked, model=model, queue_ms=0.0, timing=timing, produced_ns=time.time_ns()
                )
                out.write(line.decode() + "\n")
            count += len(chunk)
            bar.update(len(chunk))
    elapsed = time.perf_counter() - started
    return {"frames": count, "seconds": round(elapsed, 2), "fps": round(count / elapsed, 1)}
