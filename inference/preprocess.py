"""Batch preprocessing: decoded BGR uint8 frames of any sizes -> one model input tensor.

Why hand-written rather than ``cv2.dnn.blobFromImagesWithParams``: that function letterboxes too, but it
does not return the per-image scale/padding, and boxes must be mapped back to each original frame exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from inference.manifest import ModelManifest, Preprocessing


@dataclass(frozen=True)
class BatchTransform:
    """Per-image geometry, model-input pixels -> original pixels: ``orig = (x - pad) / scale``.

    Arrays of shape ``(B, 2)`` in (x, y) order; ``orig_size`` is (w, h) for clipping.
    """

    scale: np.ndarray
    pad: np.ndarray
    orig_size: np.ndarray

    def __len__(self) -> int:
        return len(self.scale)

    def to_original(self, xyxy: np.ndarray, index: int) -> np.ndarray:
        """Map ``(N, 4)`` xyxy boxes of image ``index`` back to its original pixels, clipped to the frame."""
        sx, sy = self.scale[index]
        px, py = self.pad[index]
        w, h = self.orig_size[index]
        out = (xyxy - np.array([px, py, px, py], np.float32)) / np.array([sx, sy, sx, sy], np.float32)
        np.clip(out, 0, [w, h, w, h], out=out)
        return out.astype(np.float32, copy=False)


def _geometry(sizes: np.ndarray, target: tuple[int, int], pre: Preprocessing) -> tuple[np.ndarray, ...]:
    """Resized (w, h), integer top-left padding and exact scale for all images at once."""
    tw, th = target
    if pre.resize == "stretch":
        new = np.broadcast_to(np.array([tw, th]), sizes.shape).copy()
        offset = np.zeros_like(sizes)
    else:
        ratio = np.minimum(tw / sizes[:, 0], th / sizes[:, 1])[:, None]
        new = np.clip(np.round(sizes * ratio).astype(np.int64), 1, [tw, th])
        offset = (np.array([tw, th]) - new) // 2
    scale = (new / sizes).astype(np.float32)
    return new, offset, scale


def preprocess(frames: list[np.ndarray], manifest: ModelManifest) -> tuple[np.ndarray, BatchTransform]:
    """Resize/letterbox, convert colour, normalise and lay out ``frames`` per ``manifest``.

    Returns the input tensor (``(B,3,H,W)`` or ``(B,H,W,3)``) and the geometry to undo it.
    """
    if not frames:
        raise ValueError("preprocess needs at least one frame")
    pre = manifest.preprocessing
    tw, th = manifest.input_size
    for f in frames:
        if f.ndim != 3 or f.shape[2] != 3 or f.dtype != np.uint8:
            raise ValueError(f"expected HxWx3 uint8 BGR frames, got {f.shape} {f.dtype}")
    sizes = np.array([(f.shape[1], f.shape[0]) for f in frames], dtype=np.int64)
    new, offset, scale = _geometry(sizes, (tw, th), pre)

    canvas = np.full((len(frames), th, tw, 3), pre.pad_value, dtype=np.uint8)
    # One cv2.resize per frame is unavoidable: frames may differ in size. Everything after is batched.
    for i, frame in enumerate(frames):
        (nw, nh), (ox, oy) = new[i], offset[i]
        resized = (
            frame
            if (frame.shape[1], frame.shape[0]) == (nw, nh)
            else cv2.resize(frame, (int(nw), int(nh)), interpolation=cv2.INTER_LINEAR)
        )
        canvas[i, oy : oy + nh, ox : ox + nw] = resized

    channels = [2, 1, 0] if pre.color == "rgb" else [0, 1, 2]
    transform = BatchTransform(scale=scale, pad=offset.astype(np.float32), orig_size=sizes)
    return _normalise(canvas, channels, pre), transform


def _normalise(canvas: np.ndarray, channels: list[int], pre: Preprocessing) -> np.ndarray:
    """Channel reorder + ``(x * scale - mean) / std`` + layout, writing each output channel once."""
    b, h, w, _ = canvas.shape
    if pre.dtype == "uint8":
        out = canvas[..., channels]
        return np.ascontiguousarray(out.transpose(0, 3, 1, 2)) if pre.layout == "nchw" else out
    gain = np.float32(pre.scale) / np.asarray(pre.std, np.float32)
    bias = np.asarray(pre.mean, np.float32) / np.asarray(pre.std, np.float32)
    if pre.layout == "nchw":
        out = np.empty((b, 3, h, w), np.float32)
        for c, src in enumerate(channels):  # 3 iterations, each a full-batch vector op
            np.multiply(canvas[..., src], gain[c], out=out[:, c], dtype=np.float32)
            out[:, c] -= bias[c]
        return out
    out = canvas[..., channels].astype(np.float32)
    out *= gain
    out -= bias
    return out
