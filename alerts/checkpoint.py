"""Exactly-once rule state: camera states and consumed offsets saved in one Redis transaction.

After a crash the consumer resumes from Kafka's committed offset, which is never ahead of
the checkpoint; records at or below the checkpointed offset of their partition are skipped,
so nothing is applied twice and nothing is missed.
"""

from __future__ import annotations

import json
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def loads(data: bytes) -> Any:
    return json.loads(data)


def connect(url: str, max_connections: int = 64) -> Redis:
    """A client whose pool waits for a free connection instead of failing under bursts."""
    return Redis(
        connection_pool=BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=None)
    )


class CheckpointStore:
    def __init__(self, redis: Redis, prefix: str, app_id: str) -> None:
        self.redis = redis
        self.base = f"{prefix}:{app_id}"

    def _state_key(self, camera_id: str) -> str:
        return f"{self.base}:state:{camera_id}"

    @property
    def _offsets_key(self) -> str:
        return f"{self.base}:offsets"

    async def offset(self, tp: str) -> int:
        """Last applied offset of `topic:partition`, -1 when none."""
        value = await self.redis.hget(self._offsets_key, tp)
        return int(value) if value is not None else -1

    async def offsets(self) -> dict[str, int]:
        raw = await self.redis.hgetall(self._offsets_key)
        return {k.decode(): int(v) for k, v in raw.items()}

    async def camera(self, camera_id: str) -> dict[str, Any] | None:
        data = await self.redis.get(self._state_key(camera_id))
        return loads(data) if data is not None else None

    async def save(self, states: dict[str, dict[str, Any]], offsets: dict[str, int]) -> None:
        """Atomically: all camera states of a batch and the offsets that produced them."""
        async with self.redis.pipeline(transaction=True) as pipe:
            for camera_id, state in states.items():
                pipe.set(self._state_key(camera_id), dumps(state))
            if offsets:
                pipe.hset(self._offsets_key, mapping={k: str(v) for k, v in offsets.items()})
            await pipe.execute()

    async def reset(self) -> None:
        keys = [k async for k in self.redis.scan_iter(f"{self.base}:*")]
        if keys:
            await self.redis.delete(*keys)
