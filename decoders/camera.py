"""One camera: open, decode, sample, encode, publish; reconnect live sources on failure."""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass

import av
from confluent_kafka import KafkaException

from decoders import metrics
from decoders.errors import SourceError, StreamStalled
from decoders.health import HealthMonitor
from decoders.image_stats import ImageStats
from decoders.pipeline import BATCH, EncodeAhead
from decoders.publisher import FramePublisher, LiveQueue
from decoders.reference import ReferenceStore
from decoders.resume import find_last_frame
from decoders.sampler import FpsSampler
from decoders.settings import CameraSettings
from decoders.source import open_source
from schemas.camera_event import CameraEvent
from schemas.frame import FrameMeta
from streams.health import Heartbeat
from streams.redact import redact_text, redact_url
from streams.retry import call_with_retry

log = logging.getLogger(__name__)

# stream_ts travels with 6 decimals; a frame at most this far past the resume point was published.
_TS_TOLERANCE_S = 1e-4


@dataclass
class CameraStats:
    decoded: int = 0
    sent: int = 0  # handed to the producer; acknowledgements are counted in metrics
    reconnects: int = 0
    error: str | None = None


def backoff_delays(initial: float, maximum: float, rng: random.Random | None = None):  # noqa: ANN201
    """Exponential backoff with full jitter (AWS architecture blog), capped at `maximum`."""
    rng = rng or random.Random()
    attempt = 0
    while True:
        yield rng.uniform(initial / 2, min(maximum, initial * 2**attempt))
        attempt += 1


class CameraRunner:
    def __init__(
        self,
        camera: CameraSettings,
        publisher: FramePublisher,
        stop: threading.Event,
        *,
        max_frames: int | None = None,
        realtime: bool = False,
        rewind: bool = False,
        references: ReferenceStore | None = None,
    ) -> None:
        self.camera = camera
        self.publisher = publisher
        self.stop = stop
        self.max_frames = max_frames
        self.realtime = realtime
        self.rewind = rewind
        self.stats = CameraStats()
        self.seq = 0
        # A resumed file source skips frames up to this stream time, already on the topic.
        self._resume_ts: float | None = None
        self._base_ns: int | None = None
        self._live_queue = LiveQueue(publisher, camera.id) if camera.is_live else None
        # Bound once: looking up a labelled child per frame is measurable on the hot path.
        self._online = metrics.CAMERA_ONLINE.labels(camera.id)
        self._reconnects = metrics.RECONNECTS.labels(camera.id)
        self._decoded = metrics.FRAMES_DECODED.labels(camera.id)
        self._decode_seconds = metrics.DECODE_SECONDS.labels(camera.id)
        self._heartbeat: Heartbeat | None = None  # while run() runs: /healthz watches this loop
        # Camera health: statistics of a frame every `health.every_s`, offline records meanwhile.
        self.health = HealthMonitor(camera.id, camera.health, references)
        self._last_frame_at = time.monotonic()  # last frame published (or start): offline since

    # -- events ----------------------------------------------------------------------
    def _event(self, kind: str, reason: str | None = None, attempt: int = 0) -> None:
        reason = redact_text(reason, self.camera.url) if reason else reason
        log.info("camera %s: %s (%s)", self.camera.id, kind, reason or "")
        self._online.set(1 if kind == "online" else 0)
        self.publisher.publish_event(
            CameraEvent(
                camera_id=self.camera.id,
                event=kind,  # type: ignore[arg-type]
                at_ns=time.time_ns(),
                source=redact_url(self.camera.url),
                reason=reason,
                attempt=attempt,
            )
        )

    def _offline_health(self, reason: str | None) -> None:
        """How long the source has been away, for the camera health rules (best effort)."""
        if self.camera.health.enabled:
            offline_s = time.monotonic() - self._last_frame_at
            self.publisher.publish_health(self.health.offline_record(offline_s, reason))

    # -- main loop -------------------------------------------------------------------
    def run(self) -> CameraStats:
        """Never raises: a failing camera reports its error and leaves the others alone."""
        with self.publisher.health.loop(f"camera-{self.camera.id}") as self._heartbeat:
            return self._run()

    def _beat(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.beat()

    def _run(self) -> CameraStats:
        try:
            if not self._resume():
                return self.stats  # stopped before Kafka could tell where to resume
            if self.camera.is_live:
                self._run_live()
            else:
                self._run_file()
        except SourceError as exc:
            self.stats.error = redact_text(str(exc), self.camera.url)
            log.error("%s", self.stats.error)
            self._event("error", self.stats.error)
        except Exception as exc:  # noqa: BLE001 - isolate cameras from each other's bugs
            self.stats.error = redact_text(
                f"camera {self.camera.id}: unexpected error: {exc!r}", self.camera.url
            )
            log.error("%s", self.stats.error)
            log.debug("camera %s failed", self.camera.id, exc_info=True)
            self._event("error", self.stats.error)
        return self.stats

    def _resume(self) -> bool:
        """Carry on after this camera's last frame on the topic: seq always, file position too.

        Returns False when stopped while waiting for Kafka.
        """
        try:
            last = call_with_retry(
                lambda: find_last_frame(self.publisher.config, self.camera.id),
                health=self.publisher.health,
                dependency="kafka",
                retry_on=(KafkaException, TimeoutError),
                stop=self.stop,
            )
        except (KafkaException, TimeoutError):
            if self.stop.is_set():
                return False
            raise
        if last is None:
            return True
        self.seq = last.seq + 1
        where = ""
        if not self.camera.is_live and not self.rewind and last.stream_ts is not None:
            self._resume_ts = last.stream_ts
            # Capture times continue after the last published one, spaced by stream time as before.
            self._base_ns = max(time.time_ns(), last.capture_ns) - int(last.stream_ts * 1e9)
            where = f", after stream time {last.stream_ts:.3f}s of {redact_url(self.camera.url)}"
        log.info("camera %s: resuming at seq %d%s", self.camera.id, self.seq, where)
        return True

    def _done(self) -> bool:
        return self.stop.is_set() or (self.max_frames is not None and self.stats.sent >= self.max_frames)

    def _run_file(self) -> None:
        base_ns = self._base_ns if self._base_ns is not None else time.time_ns()
        offset_s = 0.0
        while not self._done():
            container, stream = open_source(self.camera)
            self._event("online")
            # Read before closing: PyAV 18.1.1 asserts on a closed container's stream properties.
            frame_s = 1.0 / float(stream.average_rate or 25)
            try:
                last_t = self._pump(container, stream, base_ns, offset_s, live=False)
            finally:
                container.close()
            if not self.camera.loop:
                break
            step = last_t + frame_s
            offset_s += step
            while self._resume_ts is not None and offset_s + last_t <= self._resume_ts + _TS_TOLERANCE_S:
                offset_s += step  # a whole pass already published before a restart: skip it undecoded
        reason = "stopped" if self.stop.is_set() else "end of file"
        if self._resume_ts is not None and not self.stats.sent and not self.stop.is_set():
            reason = "end of file (already published before this restart)"
            log.warning(
                "camera %s: %s was already published to its end (up to seq %d); nothing more to "
                "publish (`sightline decode --rewind` publishes it again, numbering on)",
                self.camera.id, redact_url(self.camera.url), self.seq - 1,
            )  # fmt: skip
        self._event("offline", reason)
        self._offline_health(reason)

    def _run_live(self) -> None:
        delays = backoff_delays(self.camera.reconnect_initial_s, self.camera.reconnect_max_s)
        attempt = 0
        while not self._done():
            try:
                container, stream = open_source(self.camera)
            except SourceError as exc:
                self._wait_reconnect(exc, attempt, next(delays))
                attempt += 1
                continue
            decoded_before = self.stats.decoded
            try:
                self._event("online", attempt=attempt)
                self._pump(container, stream, 0, 0.0, live=True)
                if not self._done():
                    raise StreamStalled(f"camera {self.camera.id}: stream ended")
            except (SourceError, av.error.FFmpegError) as exc:
                if self.stats.decoded > decoded_before:  # a good connection: back off from the start
                    delays = backoff_delays(self.camera.reconnect_initial_s, self.camera.reconnect_max_s)
                    attempt = 0
                self._wait_reconnect(exc, attempt, next(delays))
                attempt += 1
            finally:
                container.close()
        self._event("offline", "stopped")
        self._offline_health("stopped")

    def _wait_reconnect(self, exc: Exception, attempt: int, delay: float) -> None:
        if self.stop.is_set():
            return
        reason = redact_text(str(exc), self.camera.url)
        log.warning("camera %s: %s; reconnecting in %.2fs", self.camera.id, reason, delay)
        self._event("offline", reason, attempt=attempt)
        self._offline_health(reason)
        self._reconnects.inc()
        self.stats.reconnects += 1
        # Beat while waiting: reconnect_max_s may be longer than the liveness timeout.
        deadline = time.monotonic() + delay
        health_at = time.monotonic() + self.camera.health.offline_every_s
        while not self.stop.wait(max(0.0, min(1.0, deadline - time.monotonic()))):
            self._beat()
            if time.monotonic() >= health_at:
                self._offline_health(reason)
                health_at += self.camera.health.offline_every_s
            if time.monotonic() >= deadline:
                break

    def _publish_blocking(self, meta: FrameMeta, jpeg: bytes) -> bool:
        """A full producer queue waits for Kafka for as long as it is away: not a hang."""
        if self._heartbeat is None:
            return self.publisher.publish_blocking(meta, jpeg)
        with self._heartbeat.waiting_on("kafka"):
            return self.publisher.publish_blocking(meta, jpeg)

    def _pump(
        self,
        container: av.container.InputContainer,
        stream: av.video.stream.VideoStream,
        base_ns: int,
        offset_s: float,
        *,
        live: bool,
    ) -> float:
        """Decode until the source ends or we stop; returns the last frame's stream time.

        Decoding and encoding run a few frames ahead on a thread of their own (EncodeAhead);
        this thread numbers the frames and publishes them.
        """
        sampler = FpsSampler(self.camera.fps)
        started: float | None = None  # monotonic time of stream time 0, set by the first frame sent
        skip_to = None if live else self._resume_ts
        cam = self.camera

        def keep(t: float) -> bool:  # sampled in, and not on the topic before a restart
            return sampler.keep(t) and not (skip_to is not None and offset_s + t <= skip_to + _TS_TOLERANCE_S)

        def decoded() -> None:  # on the decoding thread: beats through sparse sampling too
            self._decoded.inc()
            self.stats.decoded += 1
            self._beat()

        # A live frame goes out the moment it is encoded; a file's may wait for a few more.
        ahead = EncodeAhead(
            container.decode(stream), cam.jpeg_quality, cam.resize, keep=keep, on_decoded=decoded,
            inspect=self.health.inspect if cam.health.enabled else None, batch=1 if live else BATCH,
        )  # fmt: skip
        try:
            with ahead:
                for frame in ahead:
                    if self._done():
                        break
                    t = frame.t
                    capture_ns = frame.decoded_ns if live else base_ns + int((offset_s + t) * 1e9)
                    if self.realtime and not live:
                        if started is None:
                            # Release each frame at its capture time, as a camera publishes what
                            # it just captured: opening the file and decoding ahead took time
                            # since `base_ns`, so the schedule starts that much earlier (the first
                            # frames go out at once) instead of stamping every frame that late.
                            behind_s = max(0.0, (time.time_ns() - capture_ns) / 1e9)
                            started = time.monotonic() - t - behind_s
                        time.sleep(max(0.0, started + t - time.monotonic()))
                    meta = FrameMeta(
                        cam.id, self.seq, capture_ns, frame.width, frame.height, "jpeg", offset_s + t
                    )
                    self._decode_seconds.observe(frame.seconds)
                    self._beat()
                    if self._live_queue is not None:
                        self._live_queue.publish(meta, frame.jpeg)
                    elif not self._publish_blocking(meta, frame.jpeg):
                        break  # stopped while waiting for Kafka or Redis; this frame was not sent
                    self._last_frame_at = time.monotonic()
                    if frame.health is not None:
                        stats = frame.health
                        assert isinstance(stats, ImageStats)
                        self.publisher.publish_health(self.health.stats_record(stats, self.seq, capture_ns))
                    self.seq += 1
                    self.stats.sent += 1
                    if self._done():
                        break  # max_frames reached: do not wait for the next frame first
        except av.error.FFmpegError as exc:
            if not live:
                reason = redact_text(str(exc), cam.url)
                raise SourceError(
                    f"camera {cam.id}: decoding {redact_url(cam.url)} failed: {reason}"
                ) from exc
            raise StreamStalled(f"camera {cam.id}: {redact_text(str(exc), cam.url)}") from exc
        return ahead.last_t
