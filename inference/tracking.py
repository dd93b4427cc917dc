"""Per-camera multi-object tracking with ``trackers.ByteTrackTracker``.

Tracks only make sense within one camera's frame sequence, so each camera gets its own tracker; a
batch mixing cameras must be routed through ``update`` one frame at a time in per-camera order.

A tracker's state can be exported to a plain JSON-able dict (``state``) and loaded back
(``load_state``), so tracks survive a worker restart or a partition moving to another worker
(see ``inference.tracker_state``). Each camera also remembers the last frame it was fed, so a frame
read again (a replayed batch) never updates the tracker twice.
"""

from __future__ import annotations

import base64
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import supervision as sv
from trackers import ByteTrackTracker
from trackers.core.bytetrack.tracklet import ByteTrackTracklet

# NanoDet-class detectors score true people around 0.4-0.8; ByteTrack's defaults (activate at 0.7, "high"
# at 0.6) would leave most of them untracked, so the defaults here are lower. All are overridable.
DEFAULT_TRACKER_OPTIONS: dict[str, Any] = {
    "track_activation_threshold": 0.45,
    "high_conf_det_threshold": 0.45,
    "minimum_consecutive_frames": 1,
    "lost_track_buffer": 30,
    "frame_rate": 10.0,
}

# Bumped whenever the exported form changes; a state with another version is ignored.
STATE_VERSION = 1


@dataclass(frozen=True)
class FramePosition:
    """The last frame a camera's tracker was fed: its ``seq`` and, when known, its frames record."""

    seq: int
    partition: int | None = None
    offset: int | None = None

    def covers(self, seq: int, partition: int | None, offset: int | None) -> bool:
        """True if a frame at (seq, partition, offset) was already fed, i.e. it is a replay.

        ``seq`` decides; a record at a later offset of the same partition is a new frame even if
        its seq does not increase (a decoder that restarted its numbering), so it is not dropped.
        """
        if seq > self.seq:
            return False
        same_partition = partition is not None and partition == self.partition
        return not (
            same_partition and offset is not None and self.offset is not None and offset > self.offset
        )


class CameraTrackers:
    """One ByteTrack tracker per camera id, created on first use and evicted after ``idle_ttl_s``.

    With ``enabled=False`` detections pass through untouched (``tracker_id`` stays ``None``).
    Detections ByteTrack has not (yet) matched get ``tracker_id == -1``; ``drop_untracked`` removes them.
    ByteTrack may reorder detections, so always read ids and boxes from the returned object.
    """

    def __init__(
        self,
        enabled: bool = True,
        *,
        drop_untracked: bool = False,
        idle_ttl_s: float | None = 600.0,
        **tracker_options: Any,
    ) -> None:
        self.enabled = enabled
        self.drop_untracked = drop_untracked
        self.idle_ttl_s = idle_ttl_s
        self.tracker_options = DEFAULT_TRACKER_OPTIONS | tracker_options
        self._trackers: dict[str, ByteTrackTracker] = {}
        self._last_used: dict[str, float] = {}
        self._positions: dict[str, FramePosition] = {}
        # Undo log of the open transaction: each camera's tracker and position before its first update.
        self._undo: dict[str, dict[str, Any] | None] | None = None
        # The model thread updates while the consumer thread may restore (on assignment).
        self.lock = threading.RLock()

    def update(
        self,
        camera_id: str,
        detections: sv.Detections,
        timestamp: float | None = None,
        *,
        seq: int | None = None,
        partition: int | None = None,
        offset: int | None = None,
    ) -> sv.Detections:
        """Assign ``tracker_id`` to one frame's detections; ``timestamp`` (seconds) copes with uneven fps.

        With ``seq``, a frame the tracker already saw (see ``FramePosition.covers``) leaves the
        tracker untouched and comes back with ``tracker_id == -1``.
        """
        if not self.enabled:
            return detections
        with self.lock:
            position = self._positions.get(camera_id)
            if seq is not None and position is not None and position.covers(seq, partition, offset):
                return self._untracked(detections)
            self._remember(camera_id)
            tracker = self._trackers.get(camera_id)
            if tracker is None or _went_back(tracker, timestamp):
                tracker = self._trackers[camera_id] = self._new_tracker(tracker)
            self._last_used[camera_id] = time.monotonic()
            if seq is not None:
                self._positions[camera_id] = FramePosition(seq, partition, offset)
            tracked = tracker.update(detections, timestamp=timestamp)
            if tracked.tracker_id is None:
                tracked.tracker_id = np.full(len(tracked), -1, dtype=np.int64)
            if self.drop_untracked:
                tracked = tracked[tracked.tracker_id >= 0]
            return tracked

    def _untracked(self, detections: sv.Detections) -> sv.Detections:
        result = detections[:] if len(detections) else sv.Detections.empty()
        result.tracker_id = np.full(len(result), -1, dtype=np.int64)
        return result[result.tracker_id >= 0] if self.drop_untracked else result

    def _new_tracker(self, previous: ByteTrackTracker | None = None) -> ByteTrackTracker:
        """A fresh tracker; after a `previous` one, its ids carry on (rules still remember the old
        tracks for a while, and a new track must never be mistaken for one of them)."""
        tracker = ByteTrackTracker(**self.tracker_options)
        if previous is not None:
            tracker._next_track_id = previous._next_track_id
        return tracker

    # -- transactions: undo what a batch did when its Kafka transaction aborts ------------
    def begin(self) -> None:
        """Start recording an undo log; ``rollback`` returns every camera to this point."""
        self._undo = {}

    def rollback(self) -> None:
        """Undo every update since ``begin`` (the batch's transaction aborted and is re-read)."""
        with self.lock:
            for camera, state in (self._undo or {}).items():
                if state is None:
                    self.reset(camera)
                else:
                    self.load_state(state)
            self._undo = None

    def _remember(self, camera_id: str) -> None:
        if self._undo is not None and camera_id not in self._undo:
            self._undo[camera_id] = self.state(camera_id)  # exported: cheaper than a deep copy

    # -- export / import --------------------------------------------------------------------
    def position(self, camera_id: str) -> FramePosition | None:
        return self._positions.get(camera_id)

    def state(self, camera_id: str) -> dict[str, Any] | None:
        """The camera's tracker as a JSON-able dict, or None if it has none."""
        with self.lock:
            tracker = self._trackers.get(camera_id)
            if tracker is None:
                return None
            position = self._positions.get(camera_id)
            return {
                "version": STATE_VERSION,
                "camera_id": camera_id,
                "position": asdict(position) if position is not None else None,
                "tracker": _export_bytetrack(tracker),
            }

    def load_state(self, state: dict[str, Any]) -> str:
        """Replace a camera's tracker by an exported one; returns the camera id.

        Raises ``ValueError`` (or ``KeyError``/``TypeError``) on a state this code cannot read.
        """
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported tracker state version {state.get('version')!r}")
        camera_id = str(state["camera_id"])
        with self.lock:
            tracker = self._new_tracker()
            _import_bytetrack(tracker, state["tracker"])
            position = state.get("position")
            self._trackers[camera_id] = tracker
            self._last_used[camera_id] = time.monotonic()
            if position is not None:
                self._positions[camera_id] = FramePosition(**position)
            else:
                self._positions.pop(camera_id, None)
            return camera_id

    # -- housekeeping -----------------------------------------------------------------------
    def reset(self, camera_id: str | None = None) -> None:
        """Forget one camera's tracks (e.g. stream restarted) or all of them."""
        with self.lock:
            for cam in [camera_id] if camera_id is not None else list(self._trackers):
                self._trackers.pop(cam, None)
                self._last_used.pop(cam, None)
                self._positions.pop(cam, None)

    def evict_idle(self, now: float | None = None) -> list[str]:
        """Drop trackers of cameras silent for longer than ``idle_ttl_s``; returns their ids."""
        if self.idle_ttl_s is None:
            return []
        now = time.monotonic() if now is None else now
        with self.lock:
            pending = self._undo or {}  # an open transaction may still roll these back
            stale = [
                cam for cam, t in self._last_used.items() if now - t > self.idle_ttl_s and cam not in pending
            ]
            for cam in stale:
                self.reset(cam)
        return stale

    @property
    def cameras(self) -> list[str]:
        return list(self._trackers)


def _array(values: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(values, dtype="<f8").tobytes()).decode("ascii")


def _from_array(text: str, shape: tuple[int, ...]) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<f8").reshape(shape).astype(np.float64)


def _export_bytetrack(tracker: ByteTrackTracker) -> dict[str, Any]:
    """What ByteTrack needs to carry on: id counter, clock and each tracklet's counters and Kalman state.

    Everything else (thresholds, noise models) comes from the tracker options when it is rebuilt.
    The Kalman state is exact (float64 bytes, base64), so a restored tracker continues bit for bit.
    """
    return {
        "next_id": int(tracker._next_track_id),
        "last_timestamp": tracker._last_timestamp,
        "tracks": [
            {
                "id": int(t.tracker_id),
                "age": int(t.age),
                "misses": int(t.time_since_update),
                "miss_s": float(t.time_since_update_seconds),
                "hits": int(t.number_of_successful_consecutive_updates),
                "x": _array(t.state_estimator.kf.state),
                "p": _array(t.state_estimator.kf.state_covariance),
            }
            for t in tracker.tracks
        ],
    }


def _import_bytetrack(tracker: ByteTrackTracker, state: dict[str, Any]) -> None:
    tracks = []
    for item in state["tracks"]:
        tracklet = ByteTrackTracklet(np.zeros(4), state_estimator_class=tracker.state_estimator_class)
        kf = tracklet.state_estimator.kf
        kf.state = _from_array(item["x"], (kf.dim_x, 1))
        kf.state_covariance = _from_array(item["p"], (kf.dim_x, kf.dim_x))
        tracklet.tracker_id = int(item["id"])
        tracklet.age = int(item["age"])
        tracklet.time_since_update = int(item["misses"])
        tracklet.time_since_update_seconds = float(item["miss_s"])
        tracklet.number_of_successful_consecutive_updates = int(item["hits"])
        tracks.append(tracklet)
    last = state["last_timestamp"]
    tracker.tracks = tracks
    tracker._next_track_id = int(state["next_id"])
    tracker._last_timestamp = None if last is None else float(last)


def _went_back(tracker: ByteTrackTracker, timestamp: float | None) -> bool:
    """The stream's clock went backwards: the camera reconnected, a file looped, a new decoder
    started (or a tracker was restored from an earlier run). ByteTrack would skip every update
    until the clock passed its last time again, leaving the frames untracked; the caller starts
    new tracks instead. (``_last_timestamp`` is the tracker's own record of that time.)"""
    last = getattr(tracker, "_last_timestamp", None)
    return timestamp is not None and last is not None and timestamp < last
