"""The model side of the worker as stages joined by bounded queues: prepare -> engine -> finish.

Each stage has one thread, so batches leave in the order they came in, and the engine starts
batch N+1 while batch N is post-processed and batch N+2 is being prepared (JPEG decoding runs
before that, on the worker's decode pool, as records arrive). The heavy parts of every stage
(libjpeg-turbo, OpenCV resizing, ONNX Runtime / TensorRT, numpy) release the GIL, so on a GPU the
engine is fed continuously and on a CPU the Python glue hides behind the model run.

With an engine that queues runs (``QueuedEngine``: native TensorRT, two execution contexts on two
streams) the engine stage submits ahead: it queues batch N+1 before reading batch N back, so the
GPU runs N+1 while N's outputs are copied out and handed on. It overlaps only with a batch that
is already waiting (never holding N back for one that has not come) and never holds more runs
than the engine has contexts.

A batch that fails in a stage is marked failed and still travels through the later stages
untouched, so the worker sees every batch once, in order. Batches of an older epoch (rewound by
an exactly-once abort) are skipped by every stage and never come out.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import supervision as sv

from inference.batching import Batch, FrameJob, Rejected, SkippedFrame
from inference.detector import Detector, PreparedBatch
from inference.engines import PendingOutputs
from inference.frames import check_decoded_size, decode_image
from inference.preprocess import BufferPool
from inference.records import BatchTiming
from schemas.detections import Skipped
from schemas.errors import ContractError
from schemas.frame import FrameMeta
from streams.claimcheck import ClaimCheckUnavailable

log = logging.getLogger(__name__)

GpuDecode = Callable[[list[bytes]], "list[np.ndarray] | None"]
# Why a frame is skipped when its batch is taken at this time (ns), expecting to wait this long (ns)
# for the model, or None (inference/freshness.py).
StaleCheck = Callable[[FrameMeta, int, int], "Skipped | None"]
_Item = tuple[Batch, list[PreparedBatch], list[list[np.ndarray]], float, float]


@dataclass
class _Queued:
    """A batch whose chunks are queued on the engine (submit-ahead), not yet read back."""

    batch: Batch
    prepared: list[PreparedBatch]
    runs: list[PendingOutputs]
    prepare_s: float
    started: float


class StagedPipeline:
    def __init__(
        self,
        current_detector: Callable[[], Detector],
        stop: threading.Event,
        depth: int = 2,
        frame_pool: BufferPool | None = None,
        gpu_decode: GpuDecode | None = None,
        stale: StaleCheck | None = None,
    ) -> None:
        self._current_detector = current_detector
        # Realtime cameras: a frame is checked again when its batch is taken for the model, the
        # moment the worker really can take it (a full pipeline holds batches for a while).
        self._stale = stale
        self._run_s = 0.0  # engine time per batch, smoothed: what a prepared batch waits per batch ahead
        # nvJPEG: jobs then yield checked JPEG bytes, decoded here a batch at a time; it returns
        # None when some payload failed, and the CPU decoder sorts out which one and why.
        self._gpu_decode = gpu_decode
        # Decoded frames come from this pool (load_image(pool=...)) and go back once copied into
        # the batch tensor: fresh arrays per frame cost more in page faults than the resize.
        self._frame_pool = frame_pool
        self._stop = stop
        self._prepare: queue.Queue[Batch | None] = queue.Queue(maxsize=depth)
        self._engine: queue.Queue[_Item | None] = queue.Queue(maxsize=depth)
        self._finish: queue.Queue[_Item | None] = queue.Queue(maxsize=depth)
        self._done: deque[Batch] = deque()
        # Submit-ahead (engine thread only): batches on the engine, oldest first, and their runs
        # not yet read back.
        self._queued: deque[_Queued] = deque()
        self._uncollected: deque[PendingOutputs] = deque()
        self._ready = threading.Event()  # set whenever a batch comes out
        self._inside = 0  # batches submitted and not yet taken out
        self._lock = threading.Lock()
        self.epoch = 0
        # When each stage took the batch it is working on (None while it waits for one).
        self._busy_since: dict[str, float | None] = {"prepare": None, "engine": None, "finish": None}
        self.fatal: BaseException | None = None
        self._threads = [
            threading.Thread(target=self._run, args=(name, work), name=name, daemon=True)
            for name, work in (
                ("prepare", self._prepare_stage),
                ("engine", self._engine_stage),
                ("finish", self._finish_stage),
            )
        ]
        for thread in self._threads:
            thread.start()

    # -- the worker's side ----------------------------------------------------------------
    def submit(self, batch: Batch, timeout: float) -> bool:
        """Hand over a closed batch; False when the first stage is full (serve acks and retry).

        A batch keeps the epoch it was opened in (``Batch.epoch``): one rewound while it waited to
        get in is skipped by every stage, like those rewound inside.
        """
        try:
            self._prepare.put(batch, timeout=timeout)
        except queue.Full:
            return False
        with self._lock:
            self._inside += 1
        return True

    def take_finished(self) -> list[Batch]:
        """Batches that came out since the last call, in submission order (rewound ones dropped)."""
        out: list[Batch] = []
        with self._lock:
            self._ready.clear()
            while self._done:
                batch = self._done.popleft()
                self._inside -= 1
                if batch.epoch == self.epoch:
                    out.append(batch)
        return out

    def wait(self, timeout: float) -> bool:
        return self._ready.wait(timeout)

    @property
    def busy(self) -> bool:
        """Some batch is inside a stage (even a rewound one, which may still hold an old model)."""
        with self._lock:
            return self._inside > 0

    @property
    def wants_batch(self) -> bool:
        """No batch is lined up for the engine (being prepared or waiting for it): a batch handed
        over now is its next run, prepared while the current one (if any) runs. The worker then
        closes its open batch early (``close_when_idle``)."""
        return self._prepare.empty() and self._engine.empty() and self._busy_since["prepare"] is None

    def longest_busy_s(self) -> float:
        """How long the stage busy the longest has held its current batch (0 when all are idle)."""
        now = time.monotonic()
        started = [t for t in self._busy_since.values() if t is not None]
        return now - min(started) if started else 0.0

    def discard(self) -> None:
        """Forget every batch inside: the stages skip them and they never come out."""
        with self._lock:
            self.epoch += 1

    def close(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._prepare.put(None, timeout=0.1)
                break
            except queue.Full:
                if time.monotonic() > deadline or not self._threads[0].is_alive():
                    return
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    # -- stages -----------------------------------------------------------------------------
    def _run(self, name: str, work: Callable[[], bool]) -> None:
        while work():
            self._busy_since[name] = None
        log.debug("%s stage stopped", name)

    def _took(self, name: str) -> None:
        self._busy_since[name] = time.monotonic()

    def _live(self, batch: Batch) -> bool:
        return batch.error is None and batch.epoch == self.epoch

    def _failed(self, batch: Batch, exc: BaseException) -> None:
        if isinstance(exc, ClaimCheckUnavailable) and self._stop.is_set():
            log.warning("stopping while Redis is down: the batch stays uncommitted")
        else:
            log.exception("inference stage failed", exc_info=exc)
            self.fatal = self.fatal or exc
        batch.fail(repr(exc))

    def _prepare_stage(self) -> bool:
        batch = self._prepare.get()
        self._took("prepare")
        if batch is None:
            self._engine.put(None)
            return False
        prepared: list[PreparedBatch] = []
        started = time.monotonic()
        if self._live(batch):
            try:
                prepared = self._prepare_batch(batch)
            except BaseException as exc:  # noqa: BLE001 - reported through the batch and `fatal`
                self._failed(batch, exc)
        self._engine.put((batch, prepared, [], time.monotonic() - started, 0.0))
        return True

    def _prepare_batch(self, batch: Batch) -> list[PreparedBatch]:
        batch.started = time.monotonic()
        jobs: list[FrameJob] = []
        values: list[np.ndarray | bytes | ContractError] = []
        now_ns, lead_ns = time.time_ns(), int(self._expected_wait_s() * 1e9)
        for job in batch.jobs:
            assert job.image is not None
            skipped = self._stale(job.meta, now_ns, lead_ns) if self._stale is not None else None
            if skipped is not None:
                self._drop_image(job)
                batch.skipped.append(SkippedFrame(job.msg, job.meta, skipped))
                continue
            try:
                values.append(job.image.result())
            except ContractError as exc:
                values.append(exc)
            finally:
                job.image = None  # the pixels live on only in the batch tensor
            jobs.append(job)
        if self._gpu_decode is not None:
            values = self._decode_payloads(jobs, values, self._gpu_decode)
        images: list[np.ndarray] = []
        sizes: list[tuple[int, int]] = []
        for job, value in zip(jobs, values, strict=True):
            if isinstance(value, ContractError):
                batch.rejected.append(Rejected(job.msg, value.reason))
                continue
            assert isinstance(value, np.ndarray)
            batch.good.append(job)
            images.append(value)
            sizes.append((job.meta.width, job.meta.height))
        batch.detector = self._current_detector()
        prepared = batch.detector.prepare(images, sizes) if images else []
        if self._frame_pool is not None:
            for image in images:
                self._frame_pool.give(image)
        return prepared

    def _expected_wait_s(self) -> float:
        """From prepared to out of the engine: the batches ahead (waiting, and the one on the
        engine) and this one's own run."""
        ahead = self._engine.qsize() + (self._busy_since["engine"] is not None)
        return (ahead + 1) * self._run_s

    def _drop_image(self, job: FrameJob) -> None:
        """A skipped frame's decoded pixels go back to the pool (or, still decoding, are dropped)."""
        future, job.image = job.image, None
        assert future is not None
        if future.cancel() or not future.done() or future.exception() is not None:
            return
        image = future.result()
        if self._frame_pool is not None and isinstance(image, np.ndarray):
            self._frame_pool.give(image)

    @staticmethod
    def _decode_payloads(
        jobs: list[FrameJob], values: list[np.ndarray | bytes | ContractError], gpu_decode: GpuDecode
    ) -> list[np.ndarray | bytes | ContractError]:
        at = [i for i, value in enumerate(values) if isinstance(value, bytes)]
        if not at:
            return values
        payloads = [values[i] for i in at]
        images = gpu_decode(payloads)  # type: ignore[arg-type]
        out = list(values)
        for n, i in enumerate(at):
            try:
                if images is None:  # some payload failed on the GPU: decode each on the CPU
                    out[i] = decode_image(jobs[i].meta, payloads[n])  # type: ignore[arg-type]
                else:
                    check_decoded_size(jobs[i].meta, images[n])
                    out[i] = images[n]
            except ContractError as exc:
                out[i] = exc
        return out

    def _engine_stage(self) -> bool:
        if self._queued:  # a batch is on the engine: overlap it only with one already waiting
            try:
                item = self._engine.get_nowait()
            except queue.Empty:
                self._took("engine")
                self._hand_on(self._queued.popleft())
                return True
        else:
            item = self._engine.get()
        self._took("engine")
        if item is None:
            self._hand_on_all()
            self._finish.put(None)
            return False
        batch, prepared, outputs, prepare_s, _ = item
        started = time.monotonic()
        detector = batch.detector
        if self._live(batch) and detector is not None and detector.max_pending > 0:
            runs = self._submit(batch, prepared, detector)
            self._queued.append(_Queued(batch, prepared, runs, prepare_s, started))
            while len(self._queued) > 1:  # the newer batch keeps the engine busy meanwhile
                self._hand_on(self._queued.popleft())
            return True
        self._hand_on_all()  # batches leave in order
        if self._live(batch) and detector is not None:
            try:
                for chunk in prepared:
                    outputs.append(detector.infer(chunk))
                    chunk.release()  # its input buffer can take the next batch
            except BaseException as exc:  # noqa: BLE001 - reported through the batch and `fatal`
                self._failed(batch, exc)
            if prepared:
                ran_s = time.monotonic() - started
                self._run_s = ran_s if not self._run_s else 0.8 * self._run_s + 0.2 * ran_s
        self._finish.put((batch, prepared, outputs, prepare_s, time.monotonic() - started))
        return True

    # -- submit-ahead, for engines that queue runs (native TensorRT) ------------------------------
    def _submit(
        self, batch: Batch, prepared: list[PreparedBatch], detector: Detector
    ) -> list[PendingOutputs]:
        """Queue every chunk of ``batch``; never holds more uncollected runs than the engine has
        room for (a submit past that would wait for a collect that only this thread makes)."""
        runs: list[PendingOutputs] = []
        try:
            for chunk in prepared:
                while len(self._uncollected) >= detector.max_pending:
                    # An older run: it keeps its outputs (or its error) for its own batch's hand-on.
                    with contextlib.suppress(Exception):
                        self._uncollected.popleft().result()
                run = detector.submit(chunk)
                chunk.release()  # the engine staged its own copy
                runs.append(run)
                self._uncollected.append(run)
        except BaseException as exc:  # noqa: BLE001 - reported through the batch and `fatal`
            self._failed(batch, exc)
        return runs

    def _hand_on(self, queued: _Queued) -> None:
        """Read a queued batch's outputs back (waiting for the engine) and pass it to finish."""
        outputs: list[list[np.ndarray]] = []
        try:
            if self._live(queued.batch):
                outputs = [run.result() for run in queued.runs]
        except BaseException as exc:  # noqa: BLE001 - reported through the batch and `fatal`
            self._failed(queued.batch, exc)
        finally:
            for run in queued.runs:
                with contextlib.suppress(ValueError):
                    self._uncollected.remove(run)
                if not outputs:  # failed or rewound: free the engine's room all the same
                    with contextlib.suppress(Exception):
                        run.discard()
        engine_s = time.monotonic() - queued.started
        self._finish.put((queued.batch, queued.prepared, outputs, queued.prepare_s, engine_s))

    def _hand_on_all(self) -> None:
        while self._queued:
            self._hand_on(self._queued.popleft())

    def _finish_stage(self) -> bool:
        item = self._finish.get()
        self._took("finish")
        if item is None:
            return False
        batch, prepared, outputs, prepare_s, engine_s = item
        if self._live(batch) and batch.detector is not None:
            try:
                results: list[sv.Detections | None] = [None] * len(batch.good)
                for chunk, chunk_outputs in zip(prepared, outputs, strict=True):
                    for index, detections in zip(
                        chunk.indices, batch.detector.finish(chunk, chunk_outputs), strict=True
                    ):
                        results[int(index)] = detections
                batch.results = [r if r is not None else sv.Detections.empty() for r in results]
                batch.timing = BatchTiming(prepare_s * 1e3, engine_s * 1e3, len(batch.good))
            except BaseException as exc:  # noqa: BLE001 - reported through the batch and `fatal`
                self._failed(batch, exc)
        for chunk in prepared:
            chunk.release()
        batch.finished = time.monotonic()
        with self._lock:
            self._done.append(batch)
            self._ready.set()
        return True
