"""Per-camera ByteTrack: stable ids across consecutive vtest.avi frames, cameras isolated, off switch."""

from __future__ import annotations

import warnings
from collections import Counter

import numpy as np
import pytest
import supervision as sv

from inference.detector import Detector
from inference.tracking import CameraTrackers


@pytest.fixture(scope="module")
def vtest_detections(nanodet_path, vtest_frames) -> list[sv.Detections]:
    detector = Detector.from_path(nanodet_path)
    dets, _ = detector.detect([vtest_frames[i] for i in range(385, 401)])
    return dets


def test_ids_are_stable_across_consecutive_frames(vtest_detections) -> None:
    trackers = CameraTrackers()
    history: dict[int, list[np.ndarray]] = {}
    for det in vtest_detections:
        tracked = trackers.update("cam-1", det)
        assert tracked.tracker_id is not None and len(tracked) == len(det)
        assert "class_name" in tracked.data
        for tid, box in zip(tracked.tracker_id.tolist(), tracked.xyxy, strict=True):
            if tid >= 0:
                history.setdefault(tid, []).append(box)
    # the three walkers and the two parked vehicles keep one id each for (almost) the whole clip
    long_lived = {tid: boxes for tid, boxes in history.items() if len(boxes) >= len(vtest_detections) - 2}
    assert len(long_lived) >= 4
    for boxes in long_lived.values():
        centres = np.array([(b[:2] + b[2:]) / 2 for b in boxes])
        steps = np.linalg.norm(np.diff(centres, axis=0), axis=1)
        assert steps.max() < 40  # one id follows one object, it never jumps across the scene


def test_cameras_do_not_share_tracks(vtest_detections) -> None:
    trackers = CameraTrackers()
    for det in vtest_detections[:3]:
        a = trackers.update("a", det)
    b = trackers.update("b", vtest_detections[0])
    assert sorted(trackers.cameras) == ["a", "b"]
    assert (a.tracker_id >= 0).sum() >= 3
    assert Counter(b.tracker_id.tolist()) == Counter([-1] * len(b))  # new camera: nothing confirmed yet


def test_disabled_passes_detections_through(vtest_detections) -> None:
    det = vtest_detections[0]
    assert CameraTrackers(enabled=False).update("cam", det) is det


def test_drop_untracked_and_eviction(vtest_detections) -> None:
    trackers = CameraTrackers(drop_untracked=True, idle_ttl_s=10)
    assert len(trackers.update("cam", vtest_detections[0])) == 0  # first frame: no confirmed tracks yet
    assert len(trackers.update("cam", vtest_detections[1])) >= 3
    assert trackers.evict_idle(now=1e12) == ["cam"] and trackers.cameras == []


def test_empty_detections_are_fine() -> None:
    tracked = CameraTrackers().update("cam", sv.Detections.empty())
    assert len(tracked) == 0 and tracked.tracker_id is not None


def test_a_stream_whose_clock_goes_back_gets_new_tracks_with_new_ids(vtest_detections) -> None:
    """A camera that reconnects (or a file that loops, or a tracker restored from an earlier run)
    starts its stream time again: ByteTrack alone would skip every update until the time passed
    its last one, leaving those frames untracked; the tracker starts over, ids counting on."""
    trackers = CameraTrackers()
    for i, det in enumerate(vtest_detections[:20]):
        before = trackers.update("cam", det, timestamp=100.0 + i / 10)
    old_ids = set(before.tracker_id.tolist()) - {-1}
    assert old_ids
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # ByteTrack's "earlier than the previous timestamp"
        after = [trackers.update("cam", det, timestamp=i / 10) for i, det in enumerate(vtest_detections[:5])]
    new_ids = set(after[-1].tracker_id.tolist()) - {-1}
    assert new_ids, "frames after the restart are tracked"
    assert min(new_ids) > max(old_ids), "a new track never reuses an id the rules may still remember"
