"""The ``Engine`` contract the detector depends on, plus fixed-batch handling shared by all engines."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Engine(Protocol):
    """Runs one model on a ready-made input batch; knows nothing about images or boxes."""

    @property
    def input_names(self) -> list[str]: ...

    @property
    def output_names(self) -> list[str]: ...

    @property
    def max_batch(self) -> int:
        """Largest batch one ``run`` call executes in a single pass (larger ones are split)."""
        ...

    def run(self, batch: np.ndarray) -> list[np.ndarray]: ...

    def close(self) -> None: ...


def run_in_chunks(
    run_once: Callable[[np.ndarray], list[np.ndarray]], batch: np.ndarray, chunk: int, fixed: bool
) -> list[np.ndarray]:
    """Split ``batch`` into runs of at most ``chunk`` and concatenate outputs along axis 0.

    With a ``fixed`` batch dimension (e.g. an export with batch 1 baked in) the last chunk is zero-padded
    to ``chunk`` and the padding's outputs are dropped, so callers can pass any batch size.
    """
    n = len(batch)
    if n == chunk or (n < chunk and not fixed):
        return run_once(batch)
    parts: list[list[np.ndarray]] = []
    for start in range(0, n, chunk):
        piece = batch[start : start + chunk]
        real = len(piece)
        if fixed and real < chunk:
            pad = np.zeros((chunk - real, *piece.shape[1:]), piece.dtype)
            piece = np.concatenate([piece, pad])
        parts.append([o[:real] for o in run_once(piece)])
    if len(parts) == 1:
        return parts[0]
    return [np.concatenate(outs) for outs in zip(*parts, strict=True)]
