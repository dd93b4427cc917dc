"""Inference engines behind one small protocol, chosen by ``make_engine``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from inference.engines.base import Engine, run_in_chunks
from inference.engines.ort import OrtEngine
from inference.engines.tensorrt import TensorRTEngine, TensorRTUnavailable

EngineKind = Literal["ort", "cpu", "cuda", "ort-tensorrt", "tensorrt"]

__all__ = [
    "Engine",
    "EngineKind",
    "OrtEngine",
    "TensorRTEngine",
    "TensorRTUnavailable",
    "make_engine",
    "run_in_chunks",
]


def make_engine(kind: EngineKind, path: str | Path, **options: Any) -> Engine:
    """Build an engine for ``path``.

    ``ort`` takes ``provider`` ("cpu" | "cuda" | "tensorrt"); ``cpu``, ``cuda`` and ``ort-tensorrt`` are
    shorthands for it. ``tensorrt`` is the native TensorRT engine. ``options`` go to the constructor.
    """
    if kind == "tensorrt":
        return TensorRTEngine(path, **options)
    shorthand = {"cpu": "cpu", "cuda": "cuda", "ort-tensorrt": "tensorrt"}
    if kind in shorthand:
        options = {"provider": shorthand[kind]} | options
    elif kind != "ort":
        raise ValueError(f"unknown engine kind {kind!r}")
    return OrtEngine(path, **options)
