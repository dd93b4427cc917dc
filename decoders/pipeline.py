"""Decode + JPEG encode on a thread of their own, a few frames ahead of whoever publishes them.

PyAV and simplejpeg release the GIL, so while the camera thread hands frame N to Kafka
(headers, produce, delivery reports, a Redis claim check), this thread already decodes and
encodes frame N+1: publishing no longer adds to the per-frame decode + encode time. The
benchmark's limit (`decoders/bench.py`) runs through this same class, so both sides do the
same work on the same threads.

A hand-rolled thread and queue rather than an executor: the frames must stay in order, the
decoder must stop within one frame when asked, and its errors must reach the consumer.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from types import TracebackType

import av

from decoders.encode import encode_jpeg

DEPTH = 8  # encoded frames held ahead of the publisher (~75 KB each at 768x576)
_PUT_WAIT_S = 0.1  # how often a decoder blocked on a full queue checks whether it should stop


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    t: float  # stream time of the frame, seconds
    jpeg: bytes
    width: int
    height: int
    decoded_ns: int  # wall clock when it came out of the decoder: a live frame's capture time
    seconds: float  # decode + resize + encode time of this frame


@dataclass(frozen=True, slots=True)
class _Failed:
    error: BaseException


_END = object()


class EncodeAhead:
    """Iterate the kept frames of `frames`, JPEG-encoded by a background thread.

    `keep(t)` decides per stream time whether a frame is encoded at all (sampling, resume);
    `on_decoded` is called for every decoded frame. Decoder errors are raised by the iterator.
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
        depth: int = DEPTH,
    ) -> None:
        self._frames = frames
        self._quality = quality
        self._size = size
        self._keep = keep
        self._on_decoded = on_decoded
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
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
            item = self._queue.get()
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item  # type: ignore[misc]

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_PUT_WAIT_S)
                return True
            except queue.Full:
                continue
        return False

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
                jpeg, width, height = encode_jpeg(frame, self._quality, self._size)
                seconds = time.perf_counter() - started
                if not self._put(EncodedFrame(t, jpeg, width, height, decoded_ns, seconds)):
                    return
                started = time.perf_counter()
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            self._put(_Failed(exc))
        finally:
            self._put(_END)
