"""Per-camera multi-object tracking with ``trackers.ByteTrackTracker``.

Tracks only make sense within one camera's frame sequence, so each camera gets its own tracker; a
batch mixing cameras must be routed through ``update`` one frame at a time in per-camera order.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import supervision as sv
from trackers import ByteTrackTracker

# NanoDet-class detectors score true people around 0.4-0.8; ByteTrack's defaults (activate at 0.7, "high"
# at 0.6) would leave most of them untracked, so the defaults here are lower. All are overridable.
DEFAULT_TRACKER_OPTIONS: dict[str, Any] = {
    "track_activation_threshold": 0.45,
    "high_conf_det_threshold": 0.45,
    "minimum_consecutive_frames": 1,
    "lost_track_buffer": 30,
    "frame_rate": 10.0,
}


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

    def update(
        self, camera_id: str, detections: sv.Detections, timestamp: float | None = None
    ) -> sv.Detections:
        """Assign ``tracker_id`` to one frame's detections; ``timestamp`` (seconds) copes with uneven fps."""
        if not self.enabled:
            return detections
        tracker = self._trackers.get(camera_id)
        if tracker is None:
            tracker = self._trackers[camera_id] = ByteTrackTracker(**self.tracker_options)
        self._last_used[camera_id] = time.monotonic()
        tracked = tracker.update(detections, timestamp=timestamp)
        if tracked.tracker_id is None:
            tracked.tracker_id = np.full(len(tracked), -1, dtype=np.int64)
        if self.drop_untracked:
            tracked = tracked[tracked.tracker_id >= 0]
        return tracked

    def reset(self, camera_id: str | None = None) -> None:
        """Forget one camera's tracks (e.g. stream restarted) or all of them."""
        for cam in [camera_id] if camera_id is not None else list(self._trackers):
            self._trackers.pop(cam, None)
            self._last_used.pop(cam, None)

    def evict_idle(self, now: float | None = None) -> list[str]:
        """Drop trackers of cameras silent for longer than ``idle_ttl_s``; returns their ids."""
        if self.idle_ttl_s is None:
            return []
        now = time.monotonic() if now is None else now
        stale = [cam for cam, t in self._last_used.items() if now - t > self.idle_ttl_s]
        for cam in stale:
            self.reset(cam)
        return stale

    @property
    def cameras(self) -> list[str]:
        return list(self._trackers)
