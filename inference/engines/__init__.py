"""Inference engines behind one small protocol, chosen by ``make_engine``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from inference.engines.base import Engine, PendingOutputs, QueuedEngine, run_in_chunks
from inference.engines.options import engine_options
from inference.engines.ort import OrtEngine
from inference.engines.tensorrt import PendingRun, TensorRTEngine, TensorRTUnavailable

EngineKind = Literal["ort", "cpu", "cuda", "ort-tensorrt", "tensorrt"]

# Options only one family understands. make_engine drops them for the other, so callers can pass one
# settings-derived dict whatever the kind (e.g. ``threads`` means nothing to native TensorRT).
_ORT_ONLY = frozenset({"threads", "provider", "io_binding", "spin"})
_TRT_ONLY = frozenset({"opt_batch", "workspace_gib"})

__all__ = [
    "Engine",
    "EngineKind",
    "OrtEngine",
    "PendingOutputs",
    "PendingRun",
    "QueuedEngine",
    "TensorRTEngine",
    "TensorRTUnavailable",
    "engine_options",
    "make_engine",
    "run_in_chunks",
]


def make_engine(kind: EngineKind, path: str | Path, **options: Any) -> Engine:
    """Build an engine for ``path``.

    ``ort`` takes ``provider`` ("cpu" | "cuda" | "tensorrt"); ``cpu``, ``cuda`` and ``ort-tensorrt`` are
    shorthands for it. ``tensorrt`` is the native TensorRT engine. ``options`` go to the constructor;
    the shared ones are ``max_batch``, ``device_id``, ``fp16``, ``cache_dir`` and ``input_shape``, and
    options meant only for the other family (``threads``; ``opt_batch``, ``workspace_gib``) are dropped.
    """
    if kind == "tensorrt":
        return TensorRTEngine(path, **{k: v for k, v in options.items() if k not in _ORT_ONLY})
    options = {k: v for k, v in options.items() if k not in _TRT_ONLY}
    shorthand = {"cpu": "cpu", "cuda": "cuda", "ort-tensorrt": "tensorrt"}
    if kind in shorthand:
        options = {"provider": shorthand[kind]} | options
    elif kind != "ort":
        raise ValueError(f"unknown engine kind {kind!r}")
    return OrtEngine(path, **options)
