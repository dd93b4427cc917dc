"""Delivery de-duplication by (endpoint, alert id) in Redis, with a TTL.

An alert can reach the delivery agent twice: the rules agent re-publishes after a crash,
or the alerts topic is re-read from the last committed offset. The key is written only
after the receiver acknowledged, so a crash before that re-delivers (never loses).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

from alerts.metrics import HEALTH
from streams.retry import acall_with_retry

T = TypeVar("T")


async def _persist(call: Callable[[], Awaitable[T]]) -> T:
    """Retried until Redis answers: an outage stalls deliveries, it never loses or doubles one."""
    return await acall_with_retry(call, health=HEALTH, dependency="redis", retry_on=(RedisError, OSError))


class DeliveryLedger:
    def __init__(self, redis: Redis, prefix: str, ttl_s: int) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl_s = ttl_s

    def key(self, endpoint: str, alert_id: str) -> str:
        return f"{self.prefix}:delivered:{endpoint}:{alert_id}"

    async def delivered(self, endpoint: str, alert_id: str) -> bool:
        key = self.key(endpoint, alert_id)
        return bool(await _persist(lambda: self.redis.exists(key)))

    async def mark(self, endpoint: str, alert_id: str) -> None:
        key = self.key(endpoint, alert_id)
        await _persist(lambda: self.redis.set(key, b"1", ex=self.ttl_s))
