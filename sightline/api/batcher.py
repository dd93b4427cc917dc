"""Micro-batching for HTTP requests, with the workers' policy: a batch closes at `max_batch`
images or `max_wait_ms` after its first image, or, with `close_when_idle`, as soon as no more
requests are queued (batches are collected only while the model is idle, so waiting would only
idle it longer; requests that arrive while it runs make the next batch). The model runs on one
dedicated thread (detectors are not thread-safe), so the event loop keeps accepting requests
meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from prometheus_client import Gauge, Histogram

from inference.detector import Detector
from inference.detector_source import DetectorSource
from inference.wire import to_columns
from sightline.api.errors import ApiError
from sightline.config import SightlineConfig

BATCH_SIZE = Histogram(
    "sightline_api_batch_size", "Images per /v1/detect micro-batch", buckets=(1, 2, 4, 8, 16, 32, 64)
)
DETECT_SECONDS = Histogram(
    "sightline_api_model_seconds",
    "Detector.detect time per API batch",
    buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5),
)


INFLIGHT = Gauge("sightline_api_detect_inflight", "/v1/detect requests admitted (at most api.max_queue)")
OVERLOAD_RETRY_AFTER_S = 1


def overloaded(max_queue: int) -> ApiError:
    return ApiError(
        503,
        "overloaded",
        f"{max_queue} detect requests are already in progress (api.max_queue); retry shortly",
        # Refused before its body was read: close rather than drain an upload nobody will use.
        {"Retry-After": str(OVERLOAD_RETRY_AFTER_S), "Connection": "close"},
    )


@dataclass(slots=True)
class _Job:
    image: np.ndarray
    future: asyncio.Future[dict[str, Any]]
    queued: float


class DetectBatcher:
    """`await detect(image)` -> the detections as the detections record's columnar dict."""

    def __init__(self, config: SightlineConfig, detector: Detector | None = None) -> None:
        self.max_batch = config.inference.max_batch
        self.max_wait_s = config.inference.max_wait_ms / 1e3
        self.close_when_idle = config.inference.close_when_idle
        self._config = config
        self._given = detector
        self._source: DetectorSource | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="api-model")
        # Bounds the decoded images in memory: requests past it are refused, not queued.
        self.max_queue = config.api.max_queue
        self._admitted = 0
        self._queue: asyncio.Queue[_Job] | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def loaded(self) -> bool:
        return self._source is not None

    def model(self) -> tuple[str, str] | None:
        """(name, version) being served, for /readyz."""
        if self._source is None:
            return None
        manifest = self._source.current().manifest
        return manifest.name, manifest.version

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        # Built on the model thread: the same thread then owns the engine for its whole life.
        self._source = await loop.run_in_executor(
            self._executor, lambda: DetectorSource(self._config, self._given)
        )
        self._queue = asyncio.Queue(maxsize=self.max_queue)
        self._task = asyncio.create_task(self._loop(), name="detect-batcher")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._source is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._source.close)
        self._executor.shutdown(wait=False)

    @contextlib.contextmanager
    def admit(self) -> Iterator[None]:
        """Hold one of `api.max_queue` slots from reading the upload to the answer, or get a 503.

        Admission covers the body and its decoded pixels as well as the queue, so a burst of
        uploads cannot hold more than `max_queue` images in memory. Event-loop only: no lock.
        """
        if self._admitted >= self.max_queue:
            raise overloaded(self.max_queue)
        self._admitted += 1
        INFLIGHT.inc()
        try:
            yield
        finally:
            self._admitted -= 1
            INFLIGHT.dec()

    async def detect(self, image: np.ndarray) -> dict[str, Any]:
        if self._queue is None:
            raise RuntimeError("batcher not started")
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait(_Job(image, future, time.monotonic()))
        except asyncio.QueueFull:
            raise overloaded(self.max_queue) from None
        return await future

    async def _collect(self) -> list[_Job]:
        assert self._queue is not None
        jobs = [await self._queue.get()]
        deadline = jobs[0].queued + self.max_wait_s
        while len(jobs) < self.max_batch:
            # Requests that queued up while the previous batch ran are taken without waiting.
            try:
                jobs.append(self._queue.get_nowait())
                continue
            except asyncio.QueueEmpty:
                if self.close_when_idle:
                    break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                jobs.append(await asyncio.wait_for(self._queue.get(), remaining))
            except TimeoutError:
                break
        return jobs

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = [j for j in await self._collect() if not j.future.cancelled()]
            if not jobs:
                continue
            try:
                results = await loop.run_in_executor(self._executor, self._run, [j.image for j in jobs])
            except Exception as exc:  # noqa: BLE001 - every waiting request gets the error
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(exc)
                continue
            for job, result in zip(jobs, results, strict=True):
                if not job.future.done():
                    job.future.set_result(result)

    def _run(self, images: list[np.ndarray]) -> list[dict[str, Any]]:
        assert self._source is not None
        detector = self._source.current()  # picks up promotions/rollbacks (polled)
        started = time.perf_counter()
        detections, timings = detector.detect(images)
        DETECT_SECONDS.observe(time.perf_counter() - started)
        BATCH_SIZE.observe(len(images))
        out = []
        for dets in detections:
            out.append(
                {
                    "detections": to_columns(dets).as_lists(),
                    "model": {"name": detector.manifest.name, "version": detector.manifest.version},
                    "timing": {
                        "preprocess_ms": round(timings.preprocess_ms, 3),
                        "inference_ms": round(timings.inference_ms, 3),
                        "postprocess_ms": round(timings.postprocess_ms, 3),
                        "batch_size": timings.batch_size,
                    },
                }
            )
        return out
