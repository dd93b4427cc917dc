"""NanoDet (GFL head): per stride a class-score tensor ``[B, N, nc]`` (already sigmoided) and a box tensor
``[B, N, 4 * bins]`` of distribution logits for left/top/right/bottom distances. No NMS inside."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from inference.manifest import ModelManifest
from inference.postprocess.common import Candidates, threshold_best_class

NEEDS_NMS = True


@lru_cache(maxsize=16)
def _anchors(size: tuple[int, int], cells: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Cell centres ``(N, 2)`` and strides ``(N,)`` for levels of ``cells`` cells each (cached per model)."""
    w, h = size
    centres, strides = [], []
    for n in cells:
        stride = round(math.sqrt(w * h / n))
        gw, gh = math.ceil(w / stride), math.ceil(h / stride)
        if gw * gh != n:
            raise ValueError(f"cannot place {n} cells on a {w}x{h} input")
        i = np.arange(n)
        centres.append(np.stack([(i % gw + 0.5) * stride, (i // gw + 0.5) * stride], axis=1))
        strides.append(np.full(n, stride, np.float32))
    return np.concatenate(centres).astype(np.float32), np.concatenate(strides)


def _pair_levels(outputs: list[np.ndarray], num_classes: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(scores, boxes) per level, finest first, paired by cell count."""
    scores = sorted((o for o in outputs if o.shape[2] == num_classes), key=lambda o: -o.shape[1])
    boxes = sorted((o for o in outputs if o.shape[2] != num_classes), key=lambda o: -o.shape[1])
    if len(scores) != len(boxes) or [s.shape[1] for s in scores] != [b.shape[1] for b in boxes]:
        raise ValueError(
            f"cannot pair NanoDet outputs {[o.shape for o in outputs]} for {num_classes} classes"
        )
    return list(zip(scores, boxes, strict=True))


def parse(
    outputs: list[np.ndarray], manifest: ModelManifest, score_threshold: float, input_size: tuple[int, int]
) -> Candidates:
    """Threshold each level in place (no concatenation of whole score maps), decode only the survivors."""
    levels = _pair_levels(outputs, len(manifest.labels))
    cells = tuple(s.shape[1] for s, _ in levels)
    centres, strides = _anchors(tuple(input_size), cells)
    parts, first = [], 0
    for scores, dist in levels:
        b, a, best, cls = threshold_best_class(scores, score_threshold)
        parts.append((b, a + first, best, cls, dist[b, a]))
        first += scores.shape[1]
    b, a, best, cls, picked = (np.concatenate(x) for x in zip(*parts, strict=True))
    order = np.lexsort((a, b))  # (image, anchor) order, as if the levels had been one tensor
    b, a, best, cls, picked = b[order], a[order], best[order], cls[order], picked[order]

    logits = picked.reshape(len(a), 4, picked.shape[-1] // 4)
    # Softmax over the bins by hand: three numpy lines, not worth a scipy dependency.
    logits = logits - logits.max(axis=-1, keepdims=True)
    prob = np.exp(logits)
    prob /= prob.sum(axis=-1, keepdims=True)
    ltrb = (prob @ np.arange(prob.shape[-1], dtype=np.float32)) * strides[a, None]
    c = centres[a]
    xyxy = np.concatenate([c - ltrb[:, :2], c + ltrb[:, 2:]], axis=1).astype(np.float32)
    return Candidates(b, xyxy, best, cls - manifest.class_offset)
