"""The worker's staged pipeline (prepare -> engine -> finish) on the real NanoDet-m model.

What the worker relies on: batches come out once each and in order, with the same detections a
plain ``detect`` call gives; a frame that fails to decode is rejected without failing its batch;
a batch that fails in a stage still comes out (marked failed) without reordering the rest; and
batches rewound by ``discard`` never come out.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest

from inference.batching import Batch
from inference.detector import Detector
from inference.engines import Engine
from inference.pipeline import StagedPipeline
from schemas.detections import Skipped
from schemas.errors import ContractError
from schemas.frame import FrameMeta
from tests.helpers import decoded, frame_batch


@pytest.fixture(scope="module")
def detector(nanodet_path: Path) -> Detector:
    return Detector.from_path(nanodet_path, max_batch=4, engine_options={"threads": 2})


def _collect(pipeline: StagedPipeline, count: int, timeout: float = 60.0) -> list[Batch]:
    out: list[Batch] = []
    deadline = time.monotonic() + timeout
    while len(out) < count and time.monotonic() < deadline:
        pipeline.wait(0.1)
        out += pipeline.take_finished()
    return out


def _through(detector: Detector, batches: list[Batch]) -> tuple[list[Batch], StagedPipeline]:
    """Submit ``batches`` to a fresh pipeline; what came out, and the (closed) pipeline."""
    pipeline = StagedPipeline(lambda: detector, threading.Event())
    try:
        for batch in batches:
            assert pipeline.submit(batch, timeout=5)
        return _collect(pipeline, len(batches)), pipeline
    finally:
        pipeline.close()


def _frames(bus_bgr: np.ndarray) -> list[np.ndarray]:
    small = cv2.resize(bus_bgr, (bus_bgr.shape[1] // 2, bus_bgr.shape[0] // 2))
    return [bus_bgr, small, np.ascontiguousarray(bus_bgr[:, ::-1]), small[::-1].copy()]


def test_batches_come_out_in_order_with_the_detections_of_a_plain_detect(
    detector: Detector, bus_bgr: np.ndarray
) -> None:
    frames = _frames(bus_bgr)
    pipeline = StagedPipeline(lambda: detector, threading.Event())
    try:
        submitted, inputs = [], []
        for n in range(6):
            rotated = frames[n % 4 :] + frames[: n % 4]
            batch = frame_batch(list(rotated), first_offset=10 * n)
            while not pipeline.submit(batch, timeout=0.1):
                pass
            submitted.append(batch)
            inputs.append(rotated)
        out = _collect(pipeline, 6)
    finally:
        pipeline.close()
    assert out == submitted, "every batch once, in submission order"
    for batch, rotated in zip(out, inputs, strict=True):
        assert batch.error is None and batch.timing is not None and batch.timing.batch_size == 4
        assert [job.msg.offset() for job in batch.good] == [job.msg.offset() for job in batch.jobs]
        expected, _ = detector.detect(rotated)
        for got, want in zip(batch.results, expected, strict=True):
            np.testing.assert_allclose(got.xyxy, want.xyxy, atol=1e-3)
            np.testing.assert_array_equal(got.class_id, want.class_id)
        assert any(len(r) for r in batch.results), "the bus photo has detections"
        assert all(job.image is None for job in batch.jobs), "decoded pixels are not kept"


def test_an_undecodable_frame_is_rejected_and_the_rest_of_its_batch_runs(
    detector: Detector, bus_bgr: np.ndarray
) -> None:
    pipeline = StagedPipeline(lambda: detector, threading.Event())
    try:
        batch = frame_batch([bus_bgr, ContractError("undecodable jpeg image: bad"), bus_bgr], 0)
        assert pipeline.submit(batch, timeout=1)
        (out,) = _collect(pipeline, 1)
    finally:
        pipeline.close()
    assert out.error is None
    assert [j.msg.offset() for j in out.good] == [0, 2]
    assert [(r.msg.offset(), r.reason) for r in out.rejected] == [(1, "undecodable jpeg image: bad")]
    assert len(out.results) == 2


def test_a_failed_batch_comes_out_marked_and_in_place(detector: Detector, bus_bgr: np.ndarray) -> None:
    batches = [
        frame_batch([bus_bgr], 0),
        frame_batch([RuntimeError("disk on fire")], 1),
        frame_batch([bus_bgr], 2),
    ]
    out, pipeline = _through(detector, batches)
    assert out == batches
    assert [b.error is None for b in out] == [True, False, True]
    assert "disk on fire" in str(out[1].error)
    assert isinstance(pipeline.fatal, RuntimeError), "the worker is told to stop"


def test_discarded_batches_never_come_out(detector: Detector, bus_bgr: np.ndarray) -> None:
    release = threading.Event()
    slow: Future[np.ndarray] = Future()
    threading.Thread(target=lambda: (release.wait(10), slow.set_result(bus_bgr)), daemon=True).start()
    pipeline = StagedPipeline(lambda: detector, threading.Event())
    try:
        rewound = frame_batch([bus_bgr], 0)
        rewound.jobs[0].image = slow  # still decoding when the abort comes
        assert pipeline.submit(rewound, timeout=1)
        assert pipeline.busy
        pipeline.discard()
        release.set()
        late = frame_batch([bus_bgr], 0)  # opened before the rewind, submitted after it
        assert pipeline.submit(late, timeout=5)
        kept = frame_batch([bus_bgr], 0)
        kept.epoch = pipeline.epoch
        assert pipeline.submit(kept, timeout=5)
        out = _collect(pipeline, 1)
        time.sleep(0.2)
        out += pipeline.take_finished()
    finally:
        pipeline.close()
    assert out == [kept]
    assert not pipeline.busy


def test_batch_decoded_payloads_fall_back_to_the_cpu_for_the_frame_that_fails(
    detector: Detector, bus_jpg: Path
) -> None:
    """The nvJPEG path's contract (the decoder itself runs in test_engines_gpu.py on a GPU): jobs
    yield checked JPEG bytes, the batch decoder returns None when any payload fails, and the CPU
    decoder then rejects exactly that frame with its reason."""
    import simplejpeg

    bus_jpg_bytes = bus_jpg.read_bytes()
    calls: list[int] = []

    def batch_decode(payloads: list[bytes]) -> list[np.ndarray] | None:
        calls.append(len(payloads))
        try:
            return [simplejpeg.decode_jpeg(p, colorspace="BGR") for p in payloads]
        except ValueError:
            return None

    h, w = simplejpeg.decode_jpeg_header(bus_jpg_bytes)[:2]
    pipeline = StagedPipeline(lambda: detector, threading.Event(), gpu_decode=batch_decode)
    try:
        good = frame_batch([ContractError("placeholder")] * 2, 0)
        bad = frame_batch([ContractError("placeholder")] * 2, 2)
        for batch, payloads in ((good, [bus_jpg_bytes] * 2), (bad, [bus_jpg_bytes, b"\xff\xd8garbage"])):
            for job, payload in zip(batch.jobs, payloads, strict=True):
                job.meta = FrameMeta(camera_id="cam", seq=job.meta.seq, capture_ns=1, width=w, height=h)
                job.image = decoded(payload)  # type: ignore[arg-type]
            assert pipeline.submit(batch, timeout=5)
        out = _collect(pipeline, 2)
    finally:
        pipeline.close()
    assert out == [good, bad] and calls == [2, 2]
    assert [j.msg.offset() for j in good.good] == [0, 1] and not good.rejected
    assert [j.msg.offset() for j in bad.good] == [2]
    assert [(r.msg.offset(), r.reason.split(":")[0]) for r in bad.rejected] == [(3, "undecodable jpeg image")]
    assert all(len(r) for r in good.results + bad.results), "the bus photo has detections"


def test_wants_a_batch_only_while_none_is_lined_up_for_the_model(
    detector: Detector, bus_bgr: np.ndarray
) -> None:
    release = threading.Event()
    slow: Future[np.ndarray] = Future()
    threading.Thread(target=lambda: (release.wait(10), slow.set_result(bus_bgr)), daemon=True).start()
    pipeline = StagedPipeline(lambda: detector, threading.Event())
    try:
        assert pipeline.wants_batch, "a fresh pipeline has nothing for the model"
        held = frame_batch([bus_bgr], 0)
        held.jobs[0].image = slow  # prepare holds it until the frame is decoded
        assert pipeline.submit(held, timeout=1)
        time.sleep(0.2)
        assert not pipeline.wants_batch, "a batch being prepared is the model's next run"
        release.set()
        assert _collect(pipeline, 1) == [held]
        deadline = time.monotonic() + 5  # the prepare thread marks itself idle just after handing on
        while not pipeline.wants_batch and time.monotonic() < deadline:
            time.sleep(0.01)
        assert pipeline.wants_batch, "once it is out, nothing is lined up again"
    finally:
        pipeline.close()


class _BackgroundRuns:
    """A ``QueuedEngine`` over the real ONNX Runtime engine: runs queue on a thread of their own,
    and at most ``room`` may be uncollected, as native TensorRT's ``submit`` allows one per
    execution context (tests/inference/test_engines_gpu.py runs that one on a GPU). A submit past
    the room fails here instead of hanging."""

    def __init__(self, engine: Engine, room: int = 2, fail_on_run: int | None = None) -> None:
        self._engine = engine
        self._room = threading.Semaphore(room)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="queued-engine")
        self._fail_on_run = fail_on_run
        self.max_pending = room
        self.input_names, self.output_names = engine.input_names, engine.output_names
        self.max_batch = engine.max_batch
        self.submitted = 0

    def submit(self, batch: np.ndarray) -> _Pending:
        if not self._room.acquire(timeout=5):
            raise AssertionError("submit past max_pending: native TensorRT would wait forever")
        self.submitted += 1
        failing = self.submitted == self._fail_on_run
        staged = batch.copy()  # the caller may reuse its buffer at once, as TensorRT stages its own

        def run() -> list[np.ndarray]:
            if failing:
                raise RuntimeError("engine fault")
            return self._engine.run(staged)

        return _Pending(self._pool.submit(run), self._room)

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        return self._engine.run(batch)

    def close(self) -> None:
        self._pool.shutdown()


class _Pending:
    def __init__(self, future: Future[list[np.ndarray]], room: threading.Semaphore) -> None:
        self._future, self._room, self._freed = future, room, False

    def _free(self) -> None:
        if not self._freed:
            self._freed = True
            self._room.release()

    def result(self) -> list[np.ndarray]:
        try:
            return self._future.result(timeout=60)
        finally:
            self._free()

    def discard(self) -> None:
        concurrent.futures.wait([self._future], timeout=60)
        self._free()


def _queued_detector(detector: Detector, max_batch: int, **options: int) -> Detector:
    engine = _BackgroundRuns(detector.engine, **options)
    queued = Detector(engine, detector.manifest, max_batch=max_batch)  # type: ignore[arg-type]
    assert queued.max_pending == 2
    return queued


def test_a_queued_engine_runs_ahead_and_batches_still_leave_in_order(
    detector: Detector, bus_bgr: np.ndarray
) -> None:
    queued = _queued_detector(detector, max_batch=1)  # 4 chunks a batch: twice the engine's room
    frames = _frames(bus_bgr)
    inputs = [frames[n % 4 :] + frames[: n % 4] for n in range(5)]
    pipeline = StagedPipeline(lambda: queued, threading.Event())
    try:
        submitted = [frame_batch(list(rotated), 10 * n) for n, rotated in enumerate(inputs)]
        for batch in submitted:
            while not pipeline.submit(batch, timeout=0.1):
                pass
        out = _collect(pipeline, 5)
    finally:
        pipeline.close()
    assert out == submitted, "every batch once, in submission order"
    for batch, rotated in zip(out, inputs, strict=True):
        assert batch.error is None, batch.error
        expected, _ = detector.detect(rotated)
        for got, want in zip(batch.results, expected, strict=True):
            np.testing.assert_allclose(got.xyxy, want.xyxy, atol=1e-3)
    assert queued.engine.submitted == 20  # type: ignore[attr-defined]
    assert pipeline.fatal is None


def test_a_queued_run_that_fails_fails_its_batch_only_and_frees_its_room(
    detector: Detector, bus_bgr: np.ndarray
) -> None:
    queued = _queued_detector(detector, max_batch=2, fail_on_run=2)  # the first batch's second chunk
    batches = [frame_batch([bus_bgr] * 4, 0), frame_batch([bus_bgr] * 4, 4), frame_batch([bus_bgr] * 4, 8)]
    out, _ = _through(queued, batches)
    assert out == batches
    assert [b.error is None for b in out] == [False, True, True], [b.error for b in out]
    assert "engine fault" in str(out[0].error)
    assert all(len(r) for b in out[1:] for r in b.results), "later batches still get detections"


def test_frames_that_went_stale_while_their_batch_waited_are_skipped_when_it_is_taken(
    detector: Detector, bus_bgr: np.ndarray
) -> None:
    """A full pipeline holds batches for a while: the freshness check runs again when the prepare
    stage takes the batch, and what is stale by then leaves as skipped, the rest as usual."""
    batch = frame_batch(_frames(bus_bgr), first_offset=0)
    taken: list[int] = []

    def stale(meta: FrameMeta, now_ns: int, lead_ns: int) -> Skipped | None:
        taken.append(now_ns)
        if meta.seq % 2:  # odd frames: past their max age by the time they are taken
            return None
        return Skipped(reason="stale", age_ms=1200.0, max_age_ms=800.0)

    pipeline = StagedPipeline(lambda: detector, threading.Event(), stale=stale)
    try:
        assert pipeline.submit(batch, timeout=5)
        [out] = _collect(pipeline, 1)
    finally:
        pipeline.close()
    assert out.error is None and len(taken) == 4
    assert [s.msg.offset() for s in out.skipped] == [0, 2]
    assert [job.msg.offset() for job in out.good] == [1, 3] and len(out.results) == 2
    assert len(out.results[0]) > 0, "a frame that was run has its boxes (the mirrored bus)"
    assert out.timing is not None and out.timing.batch_size == 2


def test_the_freshness_check_is_told_how_long_a_prepared_batch_will_wait(
    detector: Detector, bus_bgr: np.ndarray
) -> None:
    """Once the engine has run a batch, the prepare stage passes its run time (times the batches
    ahead) to the check, so a frame is judged by the age its detections will come out at."""
    leads: list[int] = []

    def stale(meta: FrameMeta, now_ns: int, lead_ns: int) -> Skipped | None:
        leads.append(lead_ns)
        return None

    batches = [frame_batch(_frames(bus_bgr), first_offset=4 * n) for n in range(3)]
    pipeline = StagedPipeline(lambda: detector, threading.Event(), stale=stale)
    try:
        for batch in batches:
            assert pipeline.submit(batch, timeout=5)
            _collect(pipeline, 1)  # one at a time: nothing ahead of the next
        first_run_ms = batches[0].timing.inference_ms if batches[0].timing else 0.0
    finally:
        pipeline.close()
    assert leads[:4] == [0, 0, 0, 0], "nothing measured before the first run"
    assert all(lead > 0 for lead in leads[4:])
    assert min(leads[4:]) >= 0.5 * first_run_ms * 1e6, "about one run of the model"
