"""Cheap image statistics of a frame, for the camera health rules.

Everything is measured on a small grayscale copy made by the decoder's own scaler (swscale, in
C, straight from the YUV planes), so the cost per measured frame is a fraction of a millisecond
whatever the camera's resolution (docs/benchmarks.md, "Camera health statistics"):

- brightness and contrast: mean and standard deviation of the grey levels. A covered, blacked
  out or washed out camera gives a nearly uniform image: low contrast, extreme brightness.
- sharpness: variance of the Laplacian (Pech-Pacheco et al., 2000), the usual focus measure:
  edges vanish when the lens is out of focus or fogged.
- similarity: zero-mean normalised cross-correlation with a reference frame at an even smaller
  size (`REFERENCE_WIDTH`), so people walking through the scene barely move it while a camera
  turned or shifted does; it ignores uniform changes of brightness and gain.
"""

from __future__ import annotations

from dataclasses import dataclass

import av
import cv2
import numpy as np
from numpy.typing import NDArray

REFERENCE_WIDTH = 64  # the reference frame and the copy compared with it

Gray = NDArray[np.uint8]


@dataclass(frozen=True, slots=True)
class ImageStats:
    brightness: float
    contrast: float
    sharpness: float
    similarity: float | None  # None without a reference frame


def even_height(width: int, frame_width: int, frame_height: int) -> int:
    """The height keeping the aspect ratio at `width`, rounded to an even number (swscale)."""
    return max(2, round(frame_height * width / frame_width / 2) * 2)


def gray_copy(frame: av.VideoFrame, width: int) -> Gray:
    """A `width`-wide grayscale copy of the frame, scaled by the decoder's own scaler."""
    width = min(width, frame.width)
    height = even_height(width, frame.width, frame.height)
    return frame.to_ndarray(width=width, height=height, format="gray")


def thumbnail(gray: Gray, width: int = REFERENCE_WIDTH) -> Gray:
    """The copy compared with a reference, area-averaged down to `width`."""
    height, w = gray.shape
    if w == width:
        return gray
    return cv2.resize(gray, (width, even_height(width, w, height)), interpolation=cv2.INTER_AREA)


def similarity(a: Gray, b: Gray) -> float:
    """Zero-mean normalised cross-correlation of two grey images, in [-1, 1]; `b` is resized to
    `a`'s size when they differ. A uniform image (no structure) correlates with nothing: 0."""
    if a.shape != b.shape:
        b = cv2.resize(b, (a.shape[1], a.shape[0]), interpolation=cv2.INTER_AREA)
    x = a.astype(np.float32).ravel()
    y = b.astype(np.float32).ravel()
    x -= x.mean()
    y -= y.mean()
    norm = float(np.sqrt(np.dot(x, x) * np.dot(y, y)))
    if norm < 1e-6:
        return 0.0
    return float(np.clip(np.dot(x, y) / norm, -1.0, 1.0))


def measure(gray: Gray, reference: Gray | None = None) -> ImageStats:
    """Brightness, contrast and sharpness of a grey copy, and its similarity to `reference`."""
    mean, std = cv2.meanStdDev(gray)
    _, lap_std = cv2.meanStdDev(cv2.Laplacian(gray, cv2.CV_32F))
    return ImageStats(
        brightness=round(float(mean[0, 0]), 3),
        contrast=round(float(std[0, 0]), 3),
        sharpness=round(float(lap_std[0, 0]) ** 2, 3),
        similarity=None if reference is None else round(similarity(reference, thumbnail(gray)), 4),
    )


def usable_as_reference(stats: ImageStats, *, min_contrast: float, brightness: tuple[float, float]) -> bool:
    """A frame worth keeping as the reference: not covered, black or washed out."""
    low, high = brightness
    return stats.contrast >= min_contrast and low <= stats.brightness <= high
