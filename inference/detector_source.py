"""Which model the worker runs: the registry's promoted version (hot-swapped) or a pinned one."""

from __future__ import annotations

import threading
from typing import Any

from inference.detector import Detector
from inference.engines import engine_options
from inference.hotswap import PromotedDetector
from inference.registry import ModelRegistry
from inference.settings import WorkerConfig


def engine_kind(config: WorkerConfig) -> str:
    inf = config.inference
    if inf.engine == "tensorrt":
        return "tensorrt"  # native TensorRT engine
    return {"cpu": "cpu", "cuda": "cuda", "tensorrt": "ort-tensorrt"}[inf.provider]


class DetectorSource:
    """Thread-safe: the pipeline's prepare stage asks for the model per batch, while batches on a
    replaced model may still be in later stages, so replaced models wait in ``retired`` until the
    caller says none is in use (``close_retired``)."""

    def __init__(self, config: WorkerConfig, detector: Detector | None = None) -> None:
        self._fixed = detector
        self._owned = detector is None
        self._promoted: PromotedDetector | None = None
        self._lock = threading.Lock()
        self.retired: list[Detector] = []
        if detector is None:
            inf = config.inference
            registry = ModelRegistry(inf.registry_dir)
            kind = engine_kind(config)
            options: dict[str, Any] = {
                "engine_options": engine_options(inf, kind),
                "score_threshold": inf.score_threshold,
                "nms_iou": inf.nms_iou,
                "max_batch": inf.max_batch,
            }
            if inf.model_version:
                manifest, path = registry.load(inf.model, inf.model_version)
                self._fixed = Detector.from_path(path, manifest, kind, **options)
            else:
                self._promoted = PromotedDetector(
                    registry,
                    inf.model,
                    engine=kind,
                    poll_s=inf.model_poll_s,
                    on_replaced=self.retired.append,
                    build_in_background=True,
                    **options,
                )
        self.latest = self.current()

    def current(self) -> Detector:
        with self._lock:
            if self._promoted is not None:
                self.latest = self._promoted.current()
                return self.latest
            assert self._fixed is not None
            return self._fixed

    def close_retired(self) -> None:
        """Close replaced models; call only when no batch can still be running on one."""
        with self._lock:
            retired, self.retired[:] = list(self.retired), []
        for detector in retired:
            detector.close()

    def close(self) -> None:
        """Close what we built; a detector handed in belongs to the caller."""
        self.close_retired()
        if self._promoted is not None:
            self._promoted.close()
        elif self._fixed is not None and self._owned:
            self._fixed.close()
