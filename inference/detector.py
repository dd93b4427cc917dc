"""Detector = engine + manifest + preprocess + postprocess: frames in, ``sv.Detections`` out.

The work is split in three stages (``prepare`` -> ``infer`` -> ``finish``) so a pipelined worker can run
each on its own thread with several batches in flight; ``detect`` chains them for simple callers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import supervision as sv

from inference.engines import Engine, EngineKind, PendingOutputs, QueuedEngine, make_engine
from inference.inspect_onnx import first_input, is_fixed_dim
from inference.manifest import ModelManifest, infer_manifest
from inference.postprocess import postprocess
from inference.preprocess import BatchTransform, BufferPool, dynamic_input_size, preprocess, resized_size
from inference.registry import ModelRegistry


@dataclass(frozen=True)
class Timings:
    """Wall time per stage for one ``detect`` call (summed over chunks), for metrics and batching tuning."""

    preprocess_ms: float
    inference_ms: float
    postprocess_ms: float
    batch_size: int


def model_input_shape(manifest: ModelManifest) -> tuple[int, int, int]:
    """Per-image input shape (no batch dim) implied by the manifest, for engines with symbolic H/W."""
    w, h = manifest.input_size
    return (h, w, 3) if manifest.preprocessing.layout == "nhwc" else (3, h, w)


@dataclass
class PreparedBatch:
    """One engine call's worth of frames, all of one input shape, ready for ``Detector.infer``.

    ``indices`` are positions in the list given to ``prepare``; ``transform`` maps model-input pixels back
    to each frame's original (published) pixels; ``input_size`` is the (w, h) the tensor holds.
    """

    indices: np.ndarray
    tensor: np.ndarray
    transform: BatchTransform
    input_size: tuple[int, int]
    prepare_ms: float = 0.0
    _pool: BufferPool | None = field(default=None, repr=False)

    def release(self) -> None:
        """Give the tensor's buffer back to the pool once the engine is done with it (idempotent)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.give(self.tensor)


@dataclass
class _Ordered:
    """A queued run whose outputs come back in the manifest's order."""

    run: PendingOutputs
    reorder: Callable[[list[np.ndarray]], list[np.ndarray]]

    def result(self) -> list[np.ndarray]:
        return self.reorder(self.run.result())

    def discard(self) -> None:
        self.run.discard()


def has_dynamic_hw(path: str | Path, layout: str = "nchw") -> bool:
    """True when the image input leaves both height and width symbolic (e.g. Ultralytics dynamic=True)."""
    shape = first_input(path).shape
    if len(shape) != 4:
        return False
    hw = shape[1:3] if layout == "nhwc" else shape[2:4]
    return not any(map(is_fixed_dim, hw))


class Detector:
    """Runs one model on micro-batches of decoded BGR frames.

    ``prepare``, ``infer`` and ``finish`` may each run on their own thread (one caller per stage at a
    time, several batches in flight): engine state is touched only in ``infer`` (under a lock), tensor
    buffers come from a locked pool, and everything else is read-only after construction.
    With ``dynamic_input`` (models with symbolic H/W on ONNX Runtime) each frame runs at the smallest
    stride-aligned letterbox of its size instead of the full square.
    """

    def __init__(
        self,
        engine: Engine,
        manifest: ModelManifest,
        *,
        score_threshold: float | None = None,
        nms_iou: float | None = None,
        max_detections: int = 300,
        max_batch: int | None = None,
        dynamic_input: bool = False,
    ) -> None:
        self.engine = engine
        self.manifest = manifest
        self.score_threshold = score_threshold
        self.nms_iou = nms_iou
        self.max_detections = max_detections
        self.max_batch = min(max_batch or engine.max_batch, engine.max_batch)
        self.dynamic_input = dynamic_input and manifest.preprocessing.resize == "letterbox"
        # Engines may list outputs in another order than the manifest (e.g. TensorRT); decoders use the
        # manifest order, so remember the permutation once.
        names = list(engine.output_names)
        wanted = manifest.output_names
        self._order = [names.index(n) for n in wanted] if sorted(names) == sorted(wanted) else None
        # Resolved once: the engine stage asks per batch whether it can submit ahead.
        self._queued = engine if isinstance(engine, QueuedEngine) else None
        self._pool = BufferPool()
        # For decoded frames (``load_image(pool=detector.frame_pool)``): the caller gives each image back
        # once ``prepare`` has returned, since prepare copies the pixels into its own tensor.
        self.frame_pool = BufferPool(keep=16)
        self._engine_lock = threading.Lock()

    @classmethod
    def from_path(
        cls,
        path: str | Path,
        manifest: ModelManifest | None = None,
        engine: EngineKind = "cpu",
        engine_options: dict[str, Any] | None = None,
        **detector_options: Any,
    ) -> Detector:
        """Convenience: infer the manifest if none is given and build the engine for it.

        Symbolic input H/W turn on ``dynamic_input`` for ONNX Runtime on CPU/CUDA; TensorRT (native or
        the EP) builds its engine for one shape, so it keeps the manifest's square.
        """
        manifest = manifest or infer_manifest(path, Path(path).stem, "local")
        options = {"input_shape": model_input_shape(manifest)} | (engine_options or {})
        provider = options.get("provider", "cpu")
        shape_free = engine in ("cpu", "cuda") or (engine == "ort" and provider in ("cpu", "cuda"))
        detector_options.setdefault(
            "dynamic_input", shape_free and has_dynamic_hw(path, manifest.preprocessing.layout)
        )
        return cls(make_engine(engine, path, **options), manifest, **detector_options)

    @classmethod
    def from_registry(
        cls,
        registry: ModelRegistry,
        name: str,
        engine: EngineKind = "cpu",
        engine_options: dict[str, Any] | None = None,
        **detector_options: Any,
    ) -> Detector:
        """Detector for the promoted version of ``name`` (sha256 verified on load)."""
        manifest, path = registry.promoted(name)
        return cls.from_path(path, manifest, engine, engine_options, **detector_options)

    def input_size_for(self, width: int, height: int) -> tuple[int, int]:
        """(w, h) of the model input a frame of this published size runs at."""
        if self.dynamic_input:
            return dynamic_input_size((width, height), self.manifest.input_size)
        return self.manifest.input_size

    def decode_size(self, width: int, height: int) -> tuple[int, int]:
        """Smallest (w, h) a ``width`` x ``height`` frame may be decoded at without losing model detail.

        That is the size it is resized to inside the model input (never more than the frame itself).
        """
        target = self.input_size_for(width, height)
        nw, nh = resized_size((width, height), target, self.manifest.preprocessing)
        return min(nw, width), min(nh, height)

    def prepare(
        self, images: list[np.ndarray], orig_sizes: Sequence[tuple[int, int]] | None = None
    ) -> list[PreparedBatch]:
        """Group frames by input shape (first-seen order, stable inside a group), chunk to ``max_batch``.

        ``orig_sizes`` are each frame's published (w, h) when it was decoded smaller; boxes come out in
        those pixels. Call ``release()`` on each batch once ``infer`` has run it.
        """
        if not images:
            return []
        sizes = (
            [(int(f.shape[1]), int(f.shape[0])) for f in images]
            if orig_sizes is None
            else [(int(w), int(h)) for w, h in orig_sizes]
        )
        if len(sizes) != len(images):
            raise ValueError(f"{len(images)} images but {len(sizes)} orig_sizes")
        groups: dict[tuple[int, int], list[int]] = {}
        for i, (w, h) in enumerate(sizes):
            groups.setdefault(self.input_size_for(w, h), []).append(i)
        batches = []
        for input_size, members in groups.items():
            for start in range(0, len(members), self.max_batch):
                t0 = time.perf_counter()
                chunk = members[start : start + self.max_batch]
                tensor, transform = preprocess(
                    [images[i] for i in chunk],
                    self.manifest,
                    orig_sizes=[sizes[i] for i in chunk],
                    input_size=input_size,
                    pool=self._pool,
                )
                ms = (time.perf_counter() - t0) * 1e3
                batches.append(
                    PreparedBatch(np.array(chunk, np.int64), tensor, transform, input_size, ms, self._pool)
                )
        return batches

    @property
    def max_pending(self) -> int:
        """Runs ``submit`` may hold uncollected at once: 0 when the engine only runs synchronously
        (ONNX Runtime: a run already uses every core, or the device's one stream)."""
        return self._queued.max_pending if self._queued is not None else 0

    def submit(self, prepared: PreparedBatch) -> PendingOutputs:
        """Queue one prepared batch on a ``QueuedEngine`` and return at once; ``result()`` gives the
        outputs in the manifest's order. Needs ``max_pending`` > 0; see ``QueuedEngine.submit`` for
        the limit on uncollected runs."""
        if self._queued is None:
            raise TypeError(f"{type(self.engine).__name__} runs synchronously; use infer()")
        return _Ordered(self._queued.submit(prepared.tensor), self._in_manifest_order)

    def infer(self, prepared: PreparedBatch) -> list[np.ndarray]:
        """Engine outputs for one prepared batch, in the manifest's output order."""
        with self._engine_lock:
            outputs = self.engine.run(prepared.tensor)
        return self._in_manifest_order(outputs)

    def _in_manifest_order(self, outputs: list[np.ndarray]) -> list[np.ndarray]:
        return outputs if self._order is None else [outputs[i] for i in self._order]

    def finish(self, prepared: PreparedBatch, outputs: list[np.ndarray]) -> list[sv.Detections]:
        """Detections per frame of ``prepared`` (in ``prepared.indices`` order), boxes in original pixels."""
        return postprocess(
            outputs,
            self.manifest,
            prepared.transform,
            self.score_threshold,
            self.nms_iou,
            self.max_detections,
            input_size=prepared.input_size,
        )

    def detect(
        self, images: list[np.ndarray], orig_sizes: Sequence[tuple[int, int]] | None = None
    ) -> tuple[list[sv.Detections], Timings]:
        """Detections per frame (same order), boxes in each frame's original pixels, plus stage timings."""
        t0 = time.perf_counter()
        prepared = self.prepare(images, orig_sizes)
        pre_ms = (time.perf_counter() - t0) * 1e3
        results: list[sv.Detections | None] = [None] * len(images)
        infer_ms = post_ms = 0.0
        for batch in prepared:
            t1 = time.perf_counter()
            try:
                outputs = self.infer(batch)
            finally:
                batch.release()
            t2 = time.perf_counter()
            for i, det in zip(batch.indices.tolist(), self.finish(batch, outputs), strict=True):
                results[i] = det
            t3 = time.perf_counter()
            infer_ms, post_ms = infer_ms + (t2 - t1) * 1e3, post_ms + (t3 - t2) * 1e3
        return [r for r in results if r is not None], Timings(pre_ms, infer_ms, post_ms, len(images))

    def close(self) -> None:
        self.engine.close()

    def __enter__(self) -> Detector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
