"""Ticks on the camera-health topic, so a camera whose decoder is gone is still noticed.

A decoder that died, or a host that lost power, writes nothing: no record would ever move the
camera health rule's clock past `offline_s`. So the alert processors write a `tick` (their wall
clock) for each camera with an `offline_s` check every `alerts.health_tick_s`, into the camera's
own partition of the camera-health topic (the partition librdkafka's default partitioner gives
the decoder's records, CRC32 of the key). A tick is read after everything the decoder wrote
before it there, so `tick time - last frame` is real silence, not consumer lag; and since ticks
are records, replaying the topic raises the same alerts. Several processors tick twice as often:
harmless, a tick only moves the clock.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

from alerts.settings import CameraRules
from schemas.camera_health import CameraHealth


def key_partition(key: bytes, partitions: int) -> int:
    """librdkafka's default (`consistent_random`) partition of a keyed record, as the decoder's."""
    return zlib.crc32(key) % partitions


def ticks(cameras: Iterable[CameraRules], partitions: int, now_ns: int) -> list[tuple[bytes, bytes, int]]:
    """(key, value, partition) of one tick per camera whose health rules check `offline_s`."""
    out = []
    for rules in cameras:
        if any(rule.offline_s is not None for rule in rules.camera_health):
            key = rules.camera.encode()
            value = CameraHealth(camera_id=rules.camera, kind="tick", at_ns=now_ns).encode()
            out.append((key, value, key_partition(key, partitions)))
    return out
