"""Delivery de-duplication by (endpoint, alert id) in Redis, with a TTL.

An alert can reach the delivery agent twice: the rules agent re-publishes after a crash,
or the alerts topic is re-read from the last committed offset. The key is written only
after the receiver acknowledged, so a crash before that re-delivers (never loses).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)
T = TypeVar("T")


async def _persist(what: str, call: Callable[[], Awaitable[T]]) -> T:
    """Retried until Redis answers: an outage stalls deliveries, it never loses or doubles one."""
    delay = 0.1
    while True:
        try:
            return await call()
        except (RedisError, OSError) as exc:
            log.warning("redis %s failed (%s); retrying in %.1fs", what, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


class DeliveryLedger:
    def __init__(self, redis: Redis, prefix: str, ttl_s: int) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl_s = ttl_s

    def key(self, endpoint: str, alert_id: str) -> str:
        return f"{self.prefix}:delivered:{endpoint}:{alert_id}"

    async def delivered(self, endpoint: str, alert_id: str) -> bool:
        key = self.key(endpoint, alert_id)
        return bool(await _persist("lookup", lambda: self.redis.exists(key)))

    async def mark(self, endpoint: str, alert_id: str) -> None:
        key = self.key(endpoint, alert_id)
        await _persist("write", lambda: self.redis.set(key, b"1", ex=self.ttl_s))
