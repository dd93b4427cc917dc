"""Shared tail of every output parser: class-aware NMS, per-image top-k, mapping back, ``sv.Detections``."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import supervision as sv

from inference.preprocess import BatchTransform


@dataclass(frozen=True)
class Candidates:
    """Above-threshold boxes of a whole batch as flat arrays; ``image`` is each box's batch index.

    Boxes are xyxy in model-input pixels. Flat arrays let NMS and mapping run once per batch.
    """

    image: np.ndarray
    xyxy: np.ndarray
    score: np.ndarray
    class_id: np.ndarray

    def take(self, idx: np.ndarray) -> Candidates:
        return Candidates(self.image[idx], self.xyxy[idx], self.score[idx], self.class_id[idx])


def batched_nms(c: Candidates, iou: float) -> np.ndarray:
    """Indices kept by NMS per (image, class) in one OpenCV call, highest score first.

    Keying on ``image * n_classes + class`` makes a single ``NMSBoxesBatched`` call class-aware *and*
    per-image, instead of a Python loop over images.
    """
    if len(c.score) == 0:
        return np.empty(0, np.int64)
    n_classes = int(c.class_id.max()) + 1
    keys = (c.image * n_classes + c.class_id).astype(np.int32)
    xywh = np.concatenate([c.xyxy[:, :2], c.xyxy[:, 2:] - c.xyxy[:, :2]], axis=1).astype(np.float64)
    keep = cv2.dnn.NMSBoxesBatched(xywh, c.score.astype(np.float32), keys, 0.0, float(iou))
    return np.asarray(keep, dtype=np.int64).reshape(-1)


def _top_k_per_image(c: Candidates, order: np.ndarray, max_det: int) -> np.ndarray:
    """Reorder ``order`` (score-descending) to be grouped by image and cut each image to ``max_det``."""
    order = order[np.argsort(c.image[order], kind="stable")]
    img = c.image[order]
    first = np.searchsorted(img, img, side="left")
    rank = np.arange(len(order)) - first
    return order[rank < max_det]


def finalize(
    c: Candidates,
    transform: BatchTransform,
    labels: list[str],
    nms_iou: float | None,
    max_det: int,
) -> list[sv.Detections]:
    """NMS (skipped when ``nms_iou`` is None), cap per image, map to original pixels, split per image."""
    order = batched_nms(c, nms_iou) if nms_iou is not None else np.argsort(-c.score, kind="stable")
    c = c.take(_top_k_per_image(c, order, max_det))

    scale = np.tile(transform.scale[c.image], 2)
    pad = np.tile(transform.pad[c.image], 2)
    size = np.tile(transform.orig_size[c.image], 2).astype(np.float32)
    xyxy = np.clip((c.xyxy - pad) / scale, 0, size).astype(np.float32)

    names = np.array([*labels, ""])
    class_id = c.class_id.astype(np.int64)
    class_name = names[np.where((class_id >= 0) & (class_id < len(labels)), class_id, len(labels))]

    bounds = np.searchsorted(c.image, np.arange(len(transform) + 1))
    out = []
    for i in range(len(transform)):  # one slice per image, not per box
        s = slice(bounds[i], bounds[i + 1])
        out.append(
            sv.Detections(
                xyxy=xyxy[s],
                confidence=c.score[s].astype(np.float32),
                class_id=class_id[s],
                data={"class_name": class_name[s]},
            )
        )
    return out


def threshold_best_class(scores: np.ndarray, threshold: float) -> tuple[np.ndarray, ...]:
    """For ``(B, N, C)`` class scores: (batch idx, anchor idx, best score, best class) above threshold.

    Rows whose best score clears the threshold are exactly the rows with *any* score above it, so one
    flat compare + ``flatnonzero`` (SIMD, and sparse for real models) finds them, and the per-row max runs
    only on those: measured 4x less CPU than ``scores.max(axis=-1)`` over every anchor of NanoDet-m.
    """
    b_count, n, c = scores.shape
    rows = np.unique(np.flatnonzero(scores.reshape(-1) > threshold) // c)
    hits = scores.reshape(-1, c)[rows]
    cls = hits.argmax(axis=-1)
    return rows // n, rows % n, hits[np.arange(len(rows)), cls], cls
