"""Upload validation: size, format and pixel count are checked from the header before decoding.

Decoding first would let a small "decompression bomb" (a tiny PNG claiming 100k x 100k pixels)
allocate gigabytes; the header tells the dimensions for free.
"""

from __future__ import annotations

import cv2
import numpy as np
import simplejpeg

from inference.frames import image_size as header_size
from schemas.errors import ContractError
from schemas.frame import sniff_encoding
from sightline.api.errors import ApiError


def image_size(data: bytes) -> tuple[str, int, int]:
    """(format, width, height) read from the header only."""
    if not data:
        raise ApiError(400, "empty_body", "no image in the request")
    fmt = sniff_encoding(data)
    if fmt is None:
        raise ApiError(415, "unsupported_media_type", "the body is not a JPEG or PNG image")
    try:
        width, height = header_size(fmt, data)
    except ContractError as exc:
        raise ApiError(400, "invalid_image", exc.reason) from None
    return fmt, width, height


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
