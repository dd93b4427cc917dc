"""Delivery de-duplication by (endpoint, alert id) in Redis, with a TTL.

An alert can reach the delivery agent twice: the rules agent re-publishes after a crash,
or the alerts topic is re-read from the last committed offset. The key is written only
after the receiver acknowledged, so a crash before that re-delivers (never loses).
"""

from __future__ import annotations

from redis.asyncio import Redis


class DeliveryLedger:
    def __init__(self, redis: Redis, prefix: str, ttl_s: int) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl_s = ttl_s

    def key(self, endpoint: str, alert_id: str) -> str:
        return f"{self.prefix}:delivered:{endpoint}:{alert_id}"

    async def delivered(self, endpoint: str, alert_id: str) -> bool:
        return bool(await self.redis.exists(self.key(endpoint, alert_id)))

    async def mark(self, endpoint: str, alert_id: str) -> None:
        await self.redis.set(self.key(endpoint, alert_id), b"1", ex=self.ttl_s)
