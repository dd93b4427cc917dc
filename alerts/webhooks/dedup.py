"""Delivery de-duplication by (endpoint, alert id) in Redis, with a TTL.

An alert can reach the delivery agent twice: the rules agent re-publishes after a crash,
or the alerts topic is re-read from the last committed offset. The key is written only
after the receiver acknowledged, so a crash before that re-delivers (never loses).

Lookups and marks asked for in the same event-loop turn go to Redis as one command (MGET) or
one pipeline (SET ... EX): at a few hundred alerts a second, two round trips per alert cost the
processor's one core more CPU than the HTTP requests themselves (docs/alerts.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

from alerts.metrics import HEALTH
from streams.retry import acall_with_retry

T = TypeVar("T")


async def _persist(call: Callable[[], Awaitable[T]]) -> T:
    """Retried until Redis answers: an outage stalls deliveries, it never loses or doubles one.

    The first try goes without the retry loop: tenacity's setup costs more CPU than the Redis
    command it wraps, and nearly every call succeeds at once."""
    try:
        result = await call()
    except (RedisError, OSError):
        return await acall_with_retry(call, health=HEALTH, dependency="redis", retry_on=(RedisError, OSError))
    HEALTH.ok("redis")
    return result


class _Coalesced(Generic[T]):
    """Keys submitted in the same event-loop turn are handled by one call of `run`, which
    answers for each key in order; every submitter gets its own answer."""

    def __init__(self, run: Callable[[list[str]], Awaitable[list[T]]]) -> None:
        self._run = run
        self._waiting: list[tuple[str, asyncio.Future[T]]] = []

    async def submit(self, key: str) -> T:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._waiting.append((key, future))
        if len(self._waiting) == 1:
            asyncio.ensure_future(self._flush())
        return await future

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # the rest of this turn's submitters join the batch
        batch, self._waiting = self._waiting, []
        try:
            answers = await self._run([key for key, _ in batch])
        except BaseException as exc:  # cancelled at shutdown (Redis errors are retried inside)
            for _, future in batch:
                if future.done():
                    continue
                if isinstance(exc, asyncio.CancelledError):
                    future.cancel()
                else:
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), answer in zip(batch, answers, strict=True):
            if not future.done():
                future.set_result(answer)


class DeliveryLedger:
    def __init__(self, redis: Redis, prefix: str, ttl_s: int) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl_s = ttl_s
        self._lookups: _Coalesced[bool] = _Coalesced(self._delivered_many)
        self._marks: _Coalesced[None] = _Coalesced(self._mark_many)

    def key(self, endpoint: str, alert_id: str) -> str:
        return f"{self.prefix}:delivered:{endpoint}:{alert_id}"

    async def delivered(self, endpoint: str, alert_id: str) -> bool:
        return await self._lookups.submit(self.key(endpoint, alert_id))

    async def mark(self, endpoint: str, alert_id: str) -> None:
        """Returns once Redis has the key (the caller acks the alert only then)."""
        await self._marks.submit(self.key(endpoint, alert_id))

    async def _delivered_many(self, keys: list[str]) -> list[bool]:
        values = await _persist(lambda: self.redis.mget(keys))
        return [value is not None for value in values]

    async def _mark_many(self, keys: list[str]) -> list[None]:
        async def write() -> None:
            async with self.redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.set(key, b"1", ex=self.ttl_s)
                await pipe.execute()

        await _persist(write)
        return [None] * len(keys)
