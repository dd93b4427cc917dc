"""Frame to JPEG: resize and encode straight from the decoder's YUV 4:2:0 planes.

Encoding the planes skips a YUV->RGB conversion and its inverse inside libjpeg, which is
most of the per-frame cost on a CPU. Video planes are usually limited ("TV") range while
JPEG expects full range, so they are stretched with a lookup table on the way.
"""

from __future__ import annotations

import av
import cv2
import numpy as np
import simplejpeg

_LUMA = np.clip((np.arange(256) - 16) * 255 / 219 + 0.5, 0, 255).astype(np.uint8)
_CHROMA = np.clip((np.arange(256) - 128) * 255 / 224 + 128.5, 0, 255).astype(np.uint8)
_FULL_RANGE = 2  # AVCOL_RANGE_JPEG


def encode_jpeg(
    frame: av.VideoFrame, quality: int, size: tuple[int, int] | None = None
) -> tuple[bytes, int, int]:
    """Return (jpeg bytes, width, height) of the frame, resized to `size` when given."""
    width, height = size or (frame.width, frame.height)
    if width % 2 or height % 2:
        rgb = frame.to_ndarray(width=width, height=height, format="rgb24")
        return simplejpeg.encode_jpeg(rgb, quality=quality, colorspace="RGB"), width, height
    full_range = frame.format.name.startswith("yuvj") or frame.color_range == _FULL_RANGE
    planes = frame.to_ndarray(width=width, height=height, format="yuv420p")
    luma, chroma = planes[:height], planes[height:]
    if not full_range:
        luma, chroma = cv2.LUT(luma, _LUMA), cv2.LUT(chroma, _CHROMA)
    u, v = np.ascontiguousarray(chroma).reshape(2, height // 2, width // 2)
    jpeg = simplejpeg.encode_jpeg_yuv_planes(np.ascontiguousarray(luma), u, v, quality=quality)
    return jpeg, width, height
