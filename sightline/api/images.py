"""Upload validation: size, format and pixel count are checked from the header before decoding.

Decoding first would let a small "decompression bomb" (a tiny PNG claiming 100k x 100k pixels)
allocate gigabytes; the header tells the dimensions for free.
"""

from __future__ import annotations

import struct

import cv2
import numpy as np
import simplejpeg

from sightline.api.errors import ApiError

JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def image_size(data: bytes) -> tuple[str, int, int]:
    """(format, width, height) read from the header only."""
    if not data:
        raise ApiError(400, "empty_body", "no image in the request")
    if data.startswith(JPEG_MAGIC):
        try:
            height, width, _cs, _sub = simplejpeg.decode_jpeg_header(data)
        except ValueError as exc:
            raise ApiError(400, "invalid_image", f"unreadable JPEG header: {exc}") from None
        return "jpeg", int(width), int(height)
    if data.startswith(PNG_MAGIC):
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise ApiError(400, "invalid_image", "truncated PNG header")
        width, height = struct.unpack(">II", data[16:24])
        return "png", int(width), int(height)
    raise ApiError(415, "unsupported_media_type", "the body is not a JPEG or PNG image")


def decode_image(data: bytes, max_pixels: int) -> np.ndarray:
    """BGR uint8 pixels, or an ApiError saying precisely what is wrong with the upload."""
    fmt, width, height = image_size(data)
    if width <= 0 or height <= 0:
        raise ApiError(400, "invalid_image", f"{fmt} header says {width}x{height}")
    if width * height > max_pixels:
        raise ApiError(
            413,
            "too_many_pixels",
            f"{width}x{height} = {width * height} pixels exceeds the limit {max_pixels}",
        )
    if fmt == "jpeg":
        if not data.rstrip(b"\0").endswith(b"\xff\xd9"):
            raise ApiError(400, "truncated_image", "the JPEG has no end-of-image marker (truncated upload?)")
        try:
            return simplejpeg.decode_jpeg(data, colorspace="BGR", strict=True)
        except ValueError as exc:
            raise ApiError(400, "invalid_image", f"undecodable JPEG: {exc}") from None
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ApiError(400, "invalid_image", "undecodable or truncated PNG")
    return image
