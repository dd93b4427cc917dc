"""One camera's health records: when to measure a frame, its reference frame, the records.

The decoding thread calls `inspect` for every frame it keeps; once per `every_s` of stream time
it measures a small grey copy (`decoders.image_stats`), which is the whole cost. The camera
thread turns the result into a `stats` record when it publishes that frame (same seq, same
capture time), and into `offline` records while the source is away.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import av

from decoders.image_stats import Gray, ImageStats, gray_copy, measure, thumbnail, usable_as_reference
from decoders.reference import REDIS_ERRORS, ReferenceStore, load_image, reference_id
from decoders.settings import HealthSettings
from schemas.camera_health import CameraHealth

log = logging.getLogger(__name__)


class HealthMonitor:
    def __init__(
        self,
        camera_id: str,
        settings: HealthSettings,
        store: ReferenceStore | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.camera_id = camera_id
        self.settings = settings
        self.store = None if settings.reference is not None else store
        self._clock = clock
        self._next_t: float | None = None  # stream time of the next frame to measure
        self._checked_at: float | None = None  # when Redis was last asked for the reference
        self._redis_down = False
        self.reference: Gray | None = None
        self.reference_id: str | None = None
        if settings.reference is not None:
            self._set_reference(load_image(settings.reference))

    # -- on the decoding thread ---------------------------------------------------------------
    def due(self, t: float) -> bool:
        """Once per `every_s` of stream time; a stream starting over (a looped file) restarts it."""
        if self._next_t is None or t >= self._next_t or t < self._next_t - 2 * self.settings.every_s:
            self._next_t = t + self.settings.every_s
            return True
        return False

    def inspect(self, frame: av.VideoFrame, t: float) -> ImageStats | None:
        """The statistics of `frame` when one is due, else None (most frames: nothing to do)."""
        if not self.settings.enabled or not self.due(t):
            return None
        gray = gray_copy(frame, self.settings.width)
        self._refresh_reference()
        stats = measure(gray, self.reference)
        if self.reference is None and usable_as_reference(
            stats,
            min_contrast=self.settings.reference_min_contrast,
            brightness=self.settings.reference_brightness,
        ):
            self._take_reference(thumbnail(gray))
            stats = measure(gray, self.reference)
        return stats

    def _set_reference(self, image: Gray | None) -> None:
        self.reference = image
        self.reference_id = None if image is None else reference_id(image)

    def _refresh_reference(self) -> None:
        """Follow Redis (a reference replaced or cleared by `sightline cameras reference`)."""
        now = self._clock()
        if self.store is None or (
            self._checked_at is not None and now - self._checked_at < self.settings.reference_check_s
        ):
            return
        self._checked_at = now
        try:
            stored = self.store.get(self.camera_id)
        except REDIS_ERRORS as exc:
            if not self._redis_down:
                log.warning("camera %s: reference not read from Redis (%s); kept", self.camera_id, exc)
            self._redis_down = True
            return
        except ValueError as exc:
            log.warning("camera %s: stored reference unusable (%s); taking another", self.camera_id, exc)
            stored = None
        self._redis_down = False
        if stored is None or self.reference is None or reference_id(stored) != self.reference_id:
            if stored is None and self.reference is not None:
                log.info("camera %s: reference frame cleared; taking a new one", self.camera_id)
            self._set_reference(stored)

    def _take_reference(self, image: Gray) -> None:
        self._set_reference(image)
        if self.store is None:
            return
        try:
            if not self.store.put(self.camera_id, image, replace=False):
                won = self.store.get(self.camera_id)  # another decoder stored one first
                self._set_reference(image if won is None else won)
        except REDIS_ERRORS as exc:
            log.warning("camera %s: reference frame not stored in Redis (%s)", self.camera_id, exc)
        else:
            log.info("camera %s: reference frame %s taken", self.camera_id, self.reference_id)

    # -- records --------------------------------------------------------------------------------
    def stats_record(self, stats: ImageStats, seq: int, capture_ns: int) -> CameraHealth:
        return CameraHealth(
            camera_id=self.camera_id,
            kind="stats",
            at_ns=capture_ns,
            seq=seq,
            brightness=stats.brightness,
            contrast=stats.contrast,
            sharpness=stats.sharpness,
            similarity=stats.similarity,
            reference_id=self.reference_id if stats.similarity is not None else None,
            width=self.settings.width,
        )

    def offline_record(self, offline_s: float, reason: str | None, at_ns: int | None = None) -> CameraHealth:
        return CameraHealth(
            camera_id=self.camera_id,
            kind="offline",
            at_ns=time.time_ns() if at_ns is None else at_ns,
            offline_s=round(max(0.0, offline_s), 3),
            reason=reason,
        )
