"""Detector = engine + manifest + preprocess + postprocess: frames in, ``sv.Detections`` out."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import supervision as sv

from inference.engines import Engine, EngineKind, make_engine
from inference.manifest import ModelManifest, infer_manifest
from inference.postprocess import postprocess
from inference.preprocess import preprocess
from inference.registry import ModelRegistry


@dataclass(frozen=True)
class Timings:
    """Wall time per stage for one ``detect`` call (summed over chunks), for metrics and batching tuning."""

    preprocess_ms: float
    inference_ms: float
    postprocess_ms: float
    batch_size: int

    @property
    def total_ms(self) -> float:
        return self.preprocess_ms + self.inference_ms + self.postprocess_ms


def model_input_shape(manifest: ModelManifest) -> tuple[int, int, int]:
    """Per-image input shape (no batch dim) implied by the manifest, for engines with symbolic H/W."""
    w, h = manifest.input_size
    return (h, w, 3) if manifest.preprocessing.layout == "nhwc" else (3, h, w)


class Detector:
    """Runs one model on micro-batches of decoded BGR frames.

    Not thread-safe: give each worker thread its own detector (engines hold one session/context).
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
    ) -> None:
        self.engine = engine
        self.manifest = manifest
        self.score_threshold = score_threshold
        self.nms_iou = nms_iou
        self.max_detections = max_detections
        self.max_batch = min(max_batch or engine.max_batch, engine.max_batch)
        # Engines may list outputs in another order than the manifest (e.g. TensorRT); decoders use the
        # manifest order, so remember the permutation once.
        names = list(engine.output_names)
        wanted = manifest.output_names
        self._order = [names.index(n) for n in wanted] if sorted(names) == sorted(wanted) else None

    @classmethod
    def from_path(
        cls,
        path: str | Path,
        manifest: ModelManifest | None = None,
        engine: EngineKind = "cpu",
        engine_options: dict[str, Any] | None = None,
        **detector_options: Any,
    ) -> Detector:
        """Convenience: infer the manifest if none is given and build the engine for it."""
        manifest = manifest or infer_manifest(path, Path(path).stem, "local")
        options = {"input_shape": model_input_shape(manifest)} | (engine_options or {})
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

    def detect(self, frames: list[np.ndarray]) -> tuple[list[sv.Detections], Timings]:
        """Detections per frame (same order), boxes in each frame's own pixels, plus stage timings."""
        results: list[sv.Detections] = []
        pre_ms = infer_ms = post_ms = 0.0
        for start in range(0, len(frames), self.max_batch):
            t0 = time.perf_counter()
            batch, transform = preprocess(frames[start : start + self.max_batch], self.manifest)
            t1 = time.perf_counter()
            outputs = self.engine.run(batch)
            if self._order is not None:
                outputs = [outputs[i] for i in self._order]
            t2 = time.perf_counter()
            results += postprocess(
                outputs, self.manifest, transform, self.score_threshold, self.nms_iou, self.max_detections
            )
            t3 = time.perf_counter()
            pre_ms, infer_ms, post_ms = pre_ms + t1 - t0, infer_ms + t2 - t1, post_ms + t3 - t2
        return results, Timings(pre_ms * 1e3, infer_ms * 1e3, post_ms * 1e3, len(frames))

    def close(self) -> None:
        self.engine.close()

    def __enter__(self) -> Detector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
