"""Annotated live frames for MJPEG clients: rendered once per camera, fanned out, dropped per slow client.

A camera's feed runs only while someone watches it. It wakes on each newer detections record
(from the tail thread), draws that record on the very frame it refers to and offers the JPEG to
every client. Each client holds at most one pending frame: a client that reads slower than the
camera skips frames (the newest replaces the pending one), so memory never grows with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from alerts.settings import CameraRules
from schemas.detections import DetectionsRecord
from schemas.errors import ContractError
from sightline.api.errors import DependencyDown
from sightline.api.render import FrameFetcher, render_jpeg
from sightline.api.tail import TailState
from sightline.drawing import overlays

log = logging.getLogger(__name__)

BOUNDARY = "frame"
LINGER_S = 5.0
PENDING = 8
MAX_BEHIND_NS = 1_000_000_000
MEDIA_TYPE = f"multipart/x-mixed-replace; boundary={BOUNDARY}"


class NoFrame(LookupError):
    """No detections record (or its frame) to draw yet."""


@dataclass(frozen=True)
class Annotated:
    seq: int
    capture_ns: int
    detections: int
    jpeg: bytes

    def part(self) -> bytes:
        """One multipart body part; Content-Length lets a reader cut it without scanning the JPEG."""
        head = (
            f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(self.jpeg)}\r\n"
            f"X-Frame-Seq: {self.seq}\r\nX-Capture-Ns: {self.capture_ns}\r\n"
            f"X-Detections: {self.detections}\r\n\r\n"
        )
        return head.encode() + self.jpeg + b"\r\n"


class FrameRenderer:
    """Latest detections of a camera drawn on its own frame (cached, or read back by reference)."""

    def __init__(
        self, state: TailState, fetcher: FrameFetcher, rules: dict[str, CameraRules], quality: int
    ) -> None:
        self.state, self.fetcher, self.rules, self.quality = state, fetcher, rules, quality

    def render(self, camera_id: str, shapes: bool = True) -> Annotated:
        """The camera's latest record; blocking (decode, draw, encode): call it from a worker thread.

        `shapes=False` leaves the zones and lines out (the rules editor draws its own).
        Raises NoFrame, DependencyDown (Kafka/Redis down) or ValueError (undecodable frame).
        """
        record, _ = self.state.latest(camera_id)
        if record is None:
            raise NoFrame(f"no detections seen yet for camera {camera_id!r}")
        return self.render_record(record, shapes)

    def render_record(self, record: DetectionsRecord, shapes: bool = True) -> Annotated:
        """This record drawn on the frame it belongs to (blocking, like `render`)."""
        camera_id = record.camera_id
        payload = self.state.cached_frame(record)
        if payload is None:
            try:
                payload = self.fetcher.fetch(record)
            except ContractError as exc:
                raise NoFrame(str(exc)) from None
        if payload is None:
            raise NoFrame("the frame record is no longer available")
        drawn = overlays(self.rules.get(camera_id)) if shapes else []
        jpeg = render_jpeg(payload, record, drawn, self.quality)
        return Annotated(record.seq, record.capture_ns, len(record.detections), jpeg)


def _offer(queue: asyncio.Queue[Annotated], frame: Annotated) -> None:
    """Newest wins: a pending frame the client has not taken yet is replaced."""
    if queue.full():
        queue.get_nowait()
    queue.put_nowait(frame)


@dataclass
class _Feed:
    camera_id: str
    subscribers: set[asyncio.Queue[Annotated]] = field(default_factory=set)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    # Records not drawn yet, oldest first: a burst (one inference batch) is drawn frame by frame;
    # a feed that cannot keep up loses the oldest ones.
    pending: deque[DetectionsRecord] = field(default_factory=lambda: deque(maxlen=PENDING))
    last: Annotated | None = None
    task: asyncio.Task[None] | None = None


class LiveFeeds:
    """Per-camera feeds of annotated frames, started by the first viewer, stopped a while after the last."""

    def __init__(self, renderer: FrameRenderer) -> None:
        self.renderer = renderer
        self.feeds: dict[str, _Feed] = {}
        self.loop: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.renderer.state.on_latest = self.notify

    async def close(self) -> None:
        """On shutdown: stop every feed (their clients' responses end on `stopping`)."""
        tasks = [feed.task for feed in self.feeds.values() if feed.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def notify(self, record: DetectionsRecord) -> None:
        """From the tail thread: a newer detections record for this camera arrived."""
        loop = self.loop
        if loop is not None and record.camera_id in self.feeds:
            with contextlib.suppress(RuntimeError):  # the loop closed during shutdown
                loop.call_soon_threadsafe(self._push, record)

    def _push(self, record: DetectionsRecord) -> None:
        feed = self.feeds.get(record.camera_id)
        if feed is not None:
            feed.pending.append(record)
            feed.wake.set()

    @contextlib.asynccontextmanager
    async def subscribe(self, camera_id: str) -> AsyncIterator[asyncio.Queue[Annotated]]:
        queue: asyncio.Queue[Annotated] = asyncio.Queue(maxsize=1)
        feed = self.feeds.setdefault(camera_id, _Feed(camera_id))
        feed.subscribers.add(queue)
        if feed.last is not None:
            _offer(queue, feed.last)  # something to show at once, until the next frame is drawn
        if feed.task is None or feed.task.done():
            latest, _ = self.renderer.state.latest(camera_id)
            if latest is not None:  # a first frame to draw at once
                self._push(latest)
            feed.task = asyncio.create_task(self._run(feed), name=f"live-feed-{camera_id}")
        try:
            yield queue
        finally:
            feed.subscribers.discard(queue)

    async def _run(self, feed: _Feed) -> None:
        drawn: int | None = None  # capture time of the newest frame drawn
        idle_since: float | None = None
        try:
            while True:
                # A feed outlives its last viewer by LINGER_S: a page reconnecting (each response
                # ends after api.live_stream_max_s) then misses no frame and gets one at once.
                if feed.subscribers:
                    idle_since = None
                elif idle_since is None:
                    idle_since = time.monotonic()
                elif time.monotonic() - idle_since > LINGER_S:
                    break
                try:
                    await asyncio.wait_for(feed.wake.wait(), timeout=1.0)
                except TimeoutError:
                    continue
                feed.wake.clear()
                while feed.pending:
                    record = feed.pending.popleft()
                    if drawn is not None and record.capture_ns <= drawn:
                        continue  # already drawn, or older than what was shown
                    if feed.pending and feed.pending[-1].capture_ns - record.capture_ns > MAX_BEHIND_NS:
                        continue  # catching up after a stall: a short burst, not a fast-forward
                    try:
                        frame = await asyncio.to_thread(self.renderer.render_record, record)
                    except (NoFrame, DependencyDown, ValueError) as exc:
                        log.debug("live feed %s: frame skipped: %s", feed.camera_id, exc)
                        continue
                    drawn = frame.capture_ns
                    feed.last = frame
                    for queue in list(feed.subscribers):
                        _offer(queue, frame)
        finally:
            if self.feeds.get(feed.camera_id) is feed:
                del self.feeds[feed.camera_id]
