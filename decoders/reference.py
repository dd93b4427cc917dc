"""The reference frame of each camera, which `similarity` (moved camera) compares with.

Kept in Redis as a 64-pixel-wide grayscale PNG (a few KB) under
`<prefix>:<camera>`: the decoder already talks to Redis (claim checks), a restarted decoder
finds the same reference, and `sightline cameras reference CAMERA` can replace or clear it
without a Kafka consumer or a restart (the decoder re-reads it every `reference_check_s`). A
compacted topic would also do, but every decoder would have to read it to its end at start-up
for one small image per camera. A cleared reference is taken again at the next good frame; a
saved rules version that changes the camera's rules clears it (`decoders/rules_follow.py`),
with `<prefix>:<camera>:rules` recording which rules the reference belongs to.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import cv2
import numpy as np
import redis

from decoders.image_stats import Gray, thumbnail

log = logging.getLogger(__name__)
PREFIX = "sightline:camera-health:reference"
REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError)


def reference_id(image: Gray) -> str:
    return hashlib.sha256(image.tobytes()).hexdigest()[:12]


def encode_png(image: Gray) -> bytes:
    ok, png = cv2.imencode(".png", image)
    if not ok:
        raise ValueError("could not encode the reference frame")
    return png.tobytes()


def decode_png(payload: bytes) -> Gray:
    image = cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise ValueError("reference frame is not a readable image")
    return image


def load_image(path: str | Path) -> Gray:
    """A reference from an image file (any size; only its 64-pixel grey copy is kept)."""
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise ValueError(f"{path}: not a readable image")
    return thumbnail(image)


class ReferenceStore:
    """Reads and writes the per-camera reference frames in Redis."""

    def __init__(self, client: redis.Redis, prefix: str = PREFIX) -> None:
        self.client = client
        self.prefix = prefix

    @classmethod
    def connect(cls, url: str) -> ReferenceStore:
        # Short timeouts: the decoding thread asks, and must not stall on an unreachable Redis.
        return cls(redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0))

    def key(self, camera: str) -> str:
        return f"{self.prefix}:{camera}"

    def get(self, camera: str) -> Gray | None:
        payload = self.client.get(self.key(camera))
        return None if payload is None else decode_png(payload)  # type: ignore[arg-type]

    def put(self, camera: str, image: Gray, *, replace: bool = True) -> bool:
        """Store `image` (made 64 pixels wide); without `replace` only if none is set yet."""
        stored = self.client.set(self.key(camera), encode_png(thumbnail(image)), nx=not replace)
        return bool(stored)

    def clear(self, camera: str) -> bool:
        return bool(self.client.delete(self.key(camera)))

    def rules_changed(self, camera: str, digest: str, changes_only: bool = True) -> bool:
        """Record which rules the camera's reference belongs to; when they differ from the ones
        recorded, clear the reference (taken again at the next good frame) and return True.
        Without `changes_only` (a decoder's first look) nothing recorded yet is no change."""
        old = self.client.set(f"{self.key(camera)}:rules", digest, get=True)
        previous = None if old is None else old.decode()  # type: ignore[union-attr]
        if previous == digest or (previous is None and not changes_only):
            return False
        self.clear(camera)
        return True

    def close(self) -> None:
        self.client.close()
