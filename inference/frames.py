"""Turning a frame record into pixels: validation, claim check, JPEG decoding.

Runs on a thread pool (libjpeg-turbo releases the GIL) so decoding overlaps the model run.
"""

from __future__ import annotations

import cv2
import numpy as np
import simplejpeg
from confluent_kafka import Message

from schemas.errors import ContractError
from schemas.frame import FrameMeta, check_image_bytes
from streams.claimcheck import ClaimCheckStore


def load_image(msg: Message, meta: FrameMeta, claims: ClaimCheckStore | None, max_bytes: int) -> np.ndarray:
    """BGR uint8 pixels of a validated frame record; any problem is a ContractError."""
    payload = msg.value() or b""
    if meta.claim_check is not None:
        if claims is None:
            raise ContractError("claim-check frame but no Redis configured")
        payload = claims.get(meta.claim_check)
        check_image_bytes(meta, payload, max_bytes)
    try:
        if meta.encoding == "jpeg":
            image = simplejpeg.decode_jpeg(payload, colorspace="BGR")
        else:
            image = cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_COLOR)
            if image is None:
                raise ValueError("cv2 could not decode it")
    except ValueError as exc:
        raise ContractError(f"undecodable {meta.encoding} image: {exc}") from None
    height, width = image.shape[:2]
    if (width, height) != (meta.width, meta.height):
        raise ContractError(f"image is {width}x{height} but headers say {meta.width}x{meta.height}")
    return image
