"""Tracker state survives worker restarts, replays and aborted transactions (real broker and model)."""

from __future__ import annotations

import time
import uuid

import cv2
import numpy as np
import pytest
import supervision as sv
from confluent_kafka import Producer

from inference.detector import Detector
from inference.tracker_state import TrackerStateStore
from inference.tracking import CameraTrackers
from inference.worker import InferenceWorker
from schemas.detections import DetectionsRecord
from schemas.frame import FrameMeta
from sightline.config import SightlineConfig
from streams.kafka import make_producer, transactional_producer_config
from tests.conftest import Stack
from tests.helpers import read_topic

CAMERA = "cam-track"
Tracks = dict[int, list[tuple[tuple[int, ...], int]]]


@pytest.fixture(scope="module")
def detector(nanodet_path) -> Detector:  # noqa: ANN001
    return Detector.from_path(nanodet_path)


@pytest.fixture(scope="module")
def jpegs(vtest_frames) -> list[bytes]:  # noqa: ANN001
    """Frames 380..404 of vtest.avi: three people walking, two parked vehicles."""
    return [cv2.imencode(".jpg", vtest_frames[i])[1].tobytes() for i in sorted(vtest_frames)]


@pytest.fixture(scope="module")
def detections(detector: Detector, vtest_frames) -> list[sv.Detections]:  # noqa: ANN001
    return detector.detect([vtest_frames[i] for i in sorted(vtest_frames)])[0]


def _config(stack: Stack, prefix: str, delivery: str = "at-least-once") -> SightlineConfig:
    config = stack.fresh_config(prefix, partitions=2)
    config.inference.group_id = f"{config.topics.frames.name}-workers"
    config.inference.delivery = delivery
    config.inference.max_batch = 4
    config.inference.max_wait_ms = 20
    return config


def _publish(config: SightlineConfig, jpegs: list[bytes], seqs: range) -> None:
    producer = make_producer(config.kafka)
    for seq in seqs:
        meta = FrameMeta(CAMERA, seq, time.time_ns(), 768, 576, stream_ts=seq / 10)
        producer.produce(
            config.topics.frames.name, key=CAMERA.encode(), value=jpegs[seq], headers=meta.headers()
        )
    producer.flush(10)


def _run_worker(config: SightlineConfig, detector: Detector, name: str) -> None:
    stats = InferenceWorker(config, detector=detector, worker_id=f"{name}-{uuid.uuid4().hex[:6]}").run(
        max_idle_s=1.5
    )
    assert stats.dead_letters == 0


def _tracks(config: SightlineConfig, expected: int) -> Tracks:
    """seq -> sorted (rounded box, tracker id) of every detection of that frame."""
    records = [
        DetectionsRecord.decode(m.value())
        for m in read_topic(config, config.topics.detections.name, expected=expected)
    ]
    assert sorted(r.seq for r in records) == list(range(expected)), "one record per frame"
    return {
        r.seq: sorted(
            (tuple(round(v) for v in box), tid)
            for box, tid in zip(r.detections.xyxy, r.detections.tracker_id, strict=True)
        )
        for r in records
    }


@pytest.fixture(scope="module")
def one_worker_tracks(stack: Stack, detector: Detector, jpegs: list[bytes]) -> Tracks:
    """The tracks one worker gives when it sees every frame."""
    config = _config(stack, "trk-ref")
    _publish(config, jpegs, range(len(jpegs)))
    _run_worker(config, detector, "ref")
    return _tracks(config, len(jpegs))


@pytest.mark.parametrize("delivery", ["at-least-once", "exactly-once"])
def test_track_ids_continue_across_a_worker_restart(
    stack: Stack, detector: Detector, jpegs: list[bytes], one_worker_tracks: Tracks, delivery: str
) -> None:
    frames, half = len(jpegs), len(jpegs) // 2
    expected = one_worker_tracks
    split = _config(stack, "trk-split", delivery)
    _publish(split, jpegs, range(half))
    _run_worker(split, detector, "first")
    _publish(split, jpegs, range(half, frames))
    _run_worker(split, detector, "second")  # a new process would see the same: nothing in memory
    got = _tracks(split, frames)

    ids_after = [tid for seq in range(half, frames) for _box, tid in expected[seq] if tid >= 0]
    assert len(ids_after) > 3 * (frames - half), "people and vehicles are tracked in the second half"
    assert got == expected, "the second worker carries on with the same tracks and ids as one worker would"


def test_snapshot_round_trip_replay_guard_and_aborted_snapshots(
    stack: Stack, detections: list[sv.Detections]
) -> None:
    config = _config(stack, "trk-store")
    cut, frames_partition = 10, 1
    reference = CameraTrackers(frame_rate=10.0)
    expected = [reference.update(CAMERA, d, i / 10, seq=i) for i, d in enumerate(detections)]

    writer = CameraTrackers(frame_rate=10.0)
    store = TrackerStateStore(config, writer)
    producer = Producer(transactional_producer_config(config.kafka, None, f"trk-{uuid.uuid4().hex}"))
    producer.init_transactions(30)
    for i in range(cut):
        writer.update(CAMERA, detections[i], i / 10, seq=i, partition=frames_partition, offset=i)
    producer.begin_transaction()
    assert store.publish(producer, [(CAMERA, frames_partition)], _Batch()) == 1
    producer.commit_transaction(30)
    # The next batch's snapshot is aborted with its transaction: it must never be restored.
    writer.begin()
    writer.update(CAMERA, detections[cut], cut / 10, seq=cut, partition=frames_partition, offset=cut)
    producer.begin_transaction()
    store.publish(producer, [(CAMERA, frames_partition)], _Batch(aborted=True))
    producer.flush(10)  # the snapshot is on the broker, uncommitted
    producer.abort_transaction(30)
    writer.rollback()
    # An unreadable snapshot of another camera on the same partition only costs that camera its tracks.
    garbage = make_producer(config.kafka)
    garbage.produce(config.topics.tracker_state.name, key=b"cam-bad", value=b"\x80not json", partition=1)
    garbage.flush(10)

    restored = CameraTrackers(frame_rate=10.0)
    assert TrackerStateStore(config, restored).restore([0, frames_partition]) == [CAMERA]
    assert restored.cameras == [CAMERA]
    assert restored.position(CAMERA).seq == cut - 1, "the aborted snapshot is not read"
    assert restored.state(CAMERA) == writer.state(CAMERA), "rollback and restore agree on the state"

    before = restored.state(CAMERA)
    replayed = restored.update(
        CAMERA, detections[cut - 1], (cut - 1) / 10, seq=cut - 1, partition=1, offset=cut - 1
    )
    assert (replayed.tracker_id == -1).all() and len(replayed) == len(detections[cut - 1])
    assert restored.state(CAMERA) == before, "a frame the snapshot covers does not update the tracker again"

    for i in range(cut, len(detections)):
        got = restored.update(CAMERA, detections[i], i / 10, seq=i, partition=1, offset=i)
        assert got.tracker_id.tolist() == expected[i].tracker_id.tolist(), i
        assert np.array_equal(got.xyxy, expected[i].xyxy), i
    # A new record (later offset) whose seq did not increase is a new frame, not a replay.
    last = len(detections)
    restarted = restored.update(CAMERA, detections[-1], last / 10, seq=0, partition=1, offset=last)
    assert restored.position(CAMERA).seq == 0 and (restarted.tracker_id >= 0).any()


class _Batch:
    """Counts delivery reports like the worker's batch does."""

    def __init__(self, aborted: bool = False) -> None:
        self.pending = 0
        self.aborted = aborted

    def expect_delivery(self) -> None:
        self.pending += 1

    def delivered(self, err: object) -> None:
        assert err is None or self.aborted, err
        self.pending -= 1
