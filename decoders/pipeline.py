"""Decode + JPEG encode on a thread of their own, a few frames ahead of whoever publishes them.

PyAV and simplejpeg release the GIL, so while the camera thread hands frame N to Kafka
(headers, produce, delivery reports, a Redis claim check), this thread already decodes and
encodes frame N+1: publishing no longer adds to the per-frame decode + encode time. The
benchmark's limit (`sightline/bench/decode.py`) runs through this same class, so both sides do the
same work on the same threads.

A hand-rolled thread and hand-off rather than an executor and queue.Queue: the frames must
stay in order, the decoder must stop within one frame when asked, its errors must reach the
consumer, and the two threads should wake each other once per batch of frames, not per frame:
on a busy machine every wakeup can cost the decoding thread its CPU (it waited up to half its
time at queue.Queue.put's notify in a run at load 13 on the 2-core dev machine).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from types import TracebackType

import av

from decoders.encode import encode_jpeg

DEPTH = 8  # encoded frames held ahead of the publisher (~75 KB each at 768x576)
BATCH = 4  # a waiting publisher is woken once this many frames are ready (1: at once, for live)
_PUT_WAIT_S = 0.1  # how often a decoder blocked on a full hand-off checks whether it should stop


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    t: float  # stream time of the frame, seconds
    jpeg: bytes
    width: int
    height: int
    decoded_ns: int  # wall clock when it came out of the decoder: a live frame's capture time
    seconds: float  # decode + resize + encode time of this frame
    health: object | None = None  # what `inspect` returned for it (camera health statistics)


@dataclass(frozen=True, slots=True)
class _Failed:
    error: BaseException


_END = object()


class _Handoff:
    """Bounded FIFO between one producer and one consumer that wakes either side per batch.

    The consumer sleeps only when nothing is ready and is woken when `batch` items are (or an
    end or error is); the producer sleeps only when `depth` items wait and is woken when the
    consumer has made room for a batch.
    """

    def __init__(self, depth: int, batch: int) -> None:
        self._items: deque[object] = deque()
        self._depth = depth
        self._batch = min(batch, depth)
        lock = threading.Lock()
        self._ready = threading.Condition(lock)
        self._room = threading.Condition(lock)
        self._consumer_waits = False
        self._producer_waits = False

    def put(self, item: object, stop: threading.Event, *, last: bool = False) -> bool:
        """False when `stop` was set while the hand-off was full."""
        with self._ready:
            while len(self._items) >= self._depth:
                if stop.is_set():
                    return False
                self._producer_waits = True
                self._room.wait(_PUT_WAIT_S)
                self._producer_waits = False
            self._items.append(item)
            if self._consumer_waits and (last or len(self._items) >= self._batch):
                self._ready.notify()
        return True

    def get(self) -> object:
        with self._ready:
            while not self._items:
                self._consumer_waits = True
                self._ready.wait()
                self._consumer_waits = False
            item = self._items.popleft()
            if self._producer_waits and len(self._items) <= self._depth - self._batch:
                self._room.notify()
            return item


class EncodeAhead:
    """Iterate the kept frames of `frames`, JPEG-encoded by a background thread.

    `keep(t)` decides per stream time whether a frame is encoded at all (sampling, resume);
    `on_decoded` is called for every decoded frame; `inspect(frame, t)` for every kept one, on
    this thread, its result carried with the encoded frame (camera health statistics). Decoder
    errors are raised by the iterator.
    Use it as a context manager: leaving it stops and joins the thread, which must happen
    before the container is closed (PyAV must not decode from a closed container).
    """

    def __init__(
        self,
        frames: Iterable[av.VideoFrame],
        quality: int,
        size: tuple[int, int] | None = None,
        *,
        keep: Callable[[float], bool] | None = None,
        on_decoded: Callable[[], None] | None = None,
        inspect: Callable[[av.VideoFrame, float], object | None] | None = None,
        depth: int = DEPTH,
        batch: int = BATCH,
    ) -> None:
        self._frames = frames
        self._quality = quality
        self._size = size
        self._keep = keep
        self._on_decoded = on_decoded
        self._inspect = inspect
        self._handoff = _Handoff(depth, batch)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, name="decode-encode", daemon=True)
        self.last_t = 0.0  # stream time of the last decoded frame, kept or not

    def __enter__(self) -> EncodeAhead:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def __iter__(self) -> Iterator[EncodedFrame]:
        while True:
            item = self._handoff.get()
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item  # type: ignore[misc]

    def _work(self) -> None:
        try:
            started = time.perf_counter()
            for frame in self._frames:
                if self._stop.is_set():
                    return
                if self._on_decoded is not None:
                    self._on_decoded()
                t = float(frame.time) if frame.time is not None else self.last_t
                self.last_t = t
                if self._keep is not None and not self._keep(t):
                    started = time.perf_counter()
                    continue
                decoded_ns = time.time_ns()
                health = None if self._inspect is None else self._inspect(frame, t)
                jpeg, width, height = encode_jpeg(frame, self._quality, self._size)
                seconds = time.perf_counter() - started
                if not self._handoff.put(
                    EncodedFrame(t, jpeg, width, height, decoded_ns, seconds, health), self._stop
                ):
                    return
                started = time.perf_counter()
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            self._handoff.put(_Failed(exc), self._stop, last=True)
        finally:
            self._handoff.put(_END, self._stop, last=True)
