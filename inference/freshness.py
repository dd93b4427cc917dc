"""Per-camera freshness: which frames a worker that has fallen behind skips.

A recorded file or an audit trail wants every frame in order (`complete`). A live camera wants
its alerts now: a frame older than the camera's max age when the worker can take it is worth
less than the newer frames behind it, so a `realtime` camera's stale frame is skipped instead of
run. It still gets a detections record (`skipped`), so `seq` stays continuous, exactly-once
accounting stays whole and the rules know the frame was not seen (rather than seen empty).
"""

from __future__ import annotations

from collections.abc import Sequence

from inference.settings import CameraId, Freshness
from schemas.detections import Skipped
from schemas.frame import FrameMeta


class FreshnessPolicy:
    def __init__(self, cameras: Sequence[CameraId], *, unknown: Freshness, default_max_age_ms: float) -> None:
        def max_age_ns(policy: Freshness, max_age_ms: float | None) -> int | None:
            return int((max_age_ms or default_max_age_ms) * 1e6) if policy == "realtime" else None

        self._max_age_ns = {c.id: max_age_ns(c.freshness_policy, c.max_age_ms) for c in cameras}
        self._unknown_ns = max_age_ns(unknown, None)

    def max_age_ns(self, camera_id: str) -> int | None:
        """None for a `complete` camera."""
        return self._max_age_ns.get(camera_id, self._unknown_ns)

    def check(self, meta: FrameMeta, now_ns: int, lead_ns: int = 0) -> Skipped | None:
        """Why the frame is skipped when taken at `now_ns`, or None to run it.

        `lead_ns`: how long the frame would still wait for the model once taken (the pipeline's
        estimate), so the max age bounds the age at which its detections come out. At most half the
        max age counts: a worker that cannot meet the age at all still runs the freshest frames.
        """
        limit = self.max_age_ns(meta.camera_id)
        age_ns = now_ns - meta.capture_ns
        if limit is None or age_ns + min(lead_ns, limit // 2) <= limit:
            return None
        return Skipped(reason="stale", age_ms=round(age_ns / 1e6, 1), max_age_ms=round(limit / 1e6, 1))
