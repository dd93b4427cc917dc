"""The staged Detector API: prepare -> infer -> finish, alone and on three threads, equals ``detect``."""

from __future__ import annotations

import queue
import threading

import numpy as np
import supervision as sv

from inference.detector import Detector, PreparedBatch


def assert_same(a: list[sv.Detections], b: list[sv.Detections]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.xyxy, y.xyxy)
        np.testing.assert_array_equal(x.confidence, y.confidence)
        np.testing.assert_array_equal(x.class_id, y.class_id)
        assert x.data["class_name"].tolist() == y.data["class_name"].tolist()


def frames_of(vtest_frames: dict[int, np.ndarray], count: int) -> list[np.ndarray]:
    return [vtest_frames[i] for i in sorted(vtest_frames)[:: max(1, len(vtest_frames) // count)][:count]]


def test_stages_equal_detect_and_single_frames(nanodet_path, vtest_frames) -> None:
    detector = Detector.from_path(nanodet_path, max_batch=2)
    frames = frames_of(vtest_frames, 5)
    whole, timings = detector.detect(frames)
    assert timings.batch_size == 5 and timings.preprocess_ms > 0 and timings.inference_ms > 0
    assert sum(len(d) for d in whole) >= 10  # people, a van and a car in every frame

    prepared = detector.prepare(frames)
    assert [p.indices.tolist() for p in prepared] == [[0, 1], [2, 3], [4]]
    staged: list[sv.Detections] = []
    for p in prepared:
        outputs = detector.infer(p)
        p.release()
        staged += detector.finish(p, outputs)
    assert_same(staged, whole)
    singles = [detector.detect([f])[0][0] for f in frames]
    for x, y in zip(singles, whole, strict=True):  # batching changes float sums only
        np.testing.assert_allclose(x.xyxy, y.xyxy, atol=1e-2)


def test_release_returns_the_buffer_once_and_in_flight_buffers_are_distinct(nanodet_path, bus_bgr) -> None:
    detector = Detector.from_path(nanodet_path)
    (first,) = detector.prepare([bus_bgr])
    (second,) = detector.prepare([bus_bgr])  # first not released: must not share its memory
    assert not np.shares_memory(first.tensor, second.tensor)
    np.testing.assert_array_equal(first.tensor, second.tensor)
    buffer = first.tensor
    first.release()
    first.release()  # idempotent: the pool must not hold the buffer twice
    (third,) = detector.prepare([bus_bgr])
    (fourth,) = detector.prepare([bus_bgr])
    assert third.tensor is buffer and fourth.tensor is not buffer
    for p in (second, third, fourth):
        p.release()


def test_prepare_of_nothing_is_nothing(nanodet_path) -> None:
    assert Detector.from_path(nanodet_path).prepare([]) == []


def test_three_threads_with_batches_in_flight_match_detect(nanodet_path, vtest_frames) -> None:
    """prepare, infer and finish each on its own thread, joined by bounded queues, as the worker runs them."""
    detector = Detector.from_path(nanodet_path, max_batch=2)
    frames = frames_of(vtest_frames, 12)
    expected, _ = detector.detect(frames)

    to_engine: queue.Queue[PreparedBatch | None] = queue.Queue(maxsize=2)
    to_finish: queue.Queue[tuple[PreparedBatch, list[np.ndarray]] | None] = queue.Queue(maxsize=2)
    results: dict[int, sv.Detections] = {}
    errors: list[BaseException] = []

    def guarded(fn):  # noqa: ANN001, ANN202 - test helper
        def run() -> None:
            try:
                fn()
            except BaseException as exc:  # surfaced by the assertion below
                errors.append(exc)

        return run

    def prepare() -> None:
        for start in range(0, len(frames), 3):  # several prepare calls, several batches each
            for p in detector.prepare(frames[start : start + 3]):
                p.indices += start
                to_engine.put(p)
        to_engine.put(None)

    def infer() -> None:
        while (p := to_engine.get()) is not None:
            outputs = detector.infer(p)
            p.release()
            to_finish.put((p, outputs))
        to_finish.put(None)

    def finish() -> None:
        while (item := to_finish.get()) is not None:
            p, outputs = item
            for i, det in zip(p.indices.tolist(), detector.finish(p, outputs), strict=True):
                results[i] = det

    threads = [threading.Thread(target=guarded(f)) for f in (prepare, infer, finish)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert sorted(results) == list(range(len(frames)))
    assert_same([results[i] for i in range(len(frames))], expected)
