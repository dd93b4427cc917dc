"""The ``Engine`` contract the detector depends on, plus fixed-batch handling shared by all engines."""

from __future__ import annotations

from collections.abc import Callable, Sequence
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


class PendingOutputs(Protocol):
    """A run an engine has queued: ``result()`` waits for its outputs (later calls return the
    same arrays, or raise again for a run that failed), ``discard()`` waits for it and drops them
    (error paths)."""

    def result(self) -> list[np.ndarray]: ...

    def discard(self) -> None: ...


@runtime_checkable
class QueuedEngine(Engine, Protocol):
    """An engine that queues runs without waiting for them (native TensorRT: one per execution
    context), so a caller can enqueue batch N+1 before reading batch N back and the device never
    waits for the host in between."""

    @property
    def max_pending(self) -> int:
        """Uncollected runs ``submit`` may hold at once; one more would wait for a collect."""
        ...

    def submit(self, batch: np.ndarray) -> PendingOutputs: ...


def split_batch(batch: np.ndarray, chunk: int, fixed: bool) -> list[tuple[np.ndarray, int]]:
    """Pieces of at most ``chunk`` items, each with its count of real (non-padding) items.

    With a ``fixed`` batch dimension (e.g. an export with batch 1 baked in) the last piece is zero-padded
    to ``chunk`` so the engine always sees the shape it was built for.
    """
    n = len(batch)
    if n == chunk or (n < chunk and not fixed):
        return [(batch, n)]
    pieces: list[tuple[np.ndarray, int]] = []
    for start in range(0, n, chunk):
        piece = batch[start : start + chunk]
        real = len(piece)
        if fixed and real < chunk:
            pad = np.zeros((chunk - real, *piece.shape[1:]), piece.dtype)
            piece = np.concatenate([piece, pad])
        pieces.append((piece, real))
    return pieces


def join_outputs(parts: Sequence[list[np.ndarray]]) -> list[np.ndarray]:
    """Concatenate per-piece outputs (already trimmed to their real items) along axis 0."""
    if len(parts) == 1:
        return parts[0]
    return [np.concatenate(outs) for outs in zip(*parts, strict=True)]


def run_in_chunks(
    run_once: Callable[[np.ndarray], list[np.ndarray]], batch: np.ndarray, chunk: int, fixed: bool
) -> list[np.ndarray]:
    """Run ``batch`` in pieces of at most ``chunk`` (see ``split_batch``) and join the outputs."""
    pieces = split_batch(batch, chunk, fixed)
    if len(pieces) == 1 and pieces[0][1] == len(pieces[0][0]):
        return run_once(pieces[0][0])
    return join_outputs([[o[:real] for o in run_once(piece)] for piece, real in pieces])
