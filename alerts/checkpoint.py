"""Exactly-once rule state: camera states and consumed offsets saved in one Redis transaction.

After a crash the consumer resumes from Kafka's committed offset, which is never ahead of
the checkpoint; records at or below the checkpointed offset of their partition are skipped,
so nothing is applied twice and nothing is missed.

Saves are fenced: each owner of a partition says which checkpointed offset its in-memory state
started from, and a save (or a camera load) is refused when the stored offset is another one.
So a paused former owner (SIGSTOP past the session timeout, then SIGCONT) can never overwrite
the state of the owner that took over, nor mix that owner's camera state into its own.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis

# KEYS: offsets hash, then one state key per camera. ARGV: n fenced partitions, then n pairs
# (partition, expected offset), then m pairs (partition, new offset), then the camera states.
# Returns "" when saved, else the first partition whose stored offset is not the expected one.
SAVE_FENCED = """
local n = tonumber(ARGV[1])
for i = 0, n - 1 do
  local tp = ARGV[2 + 2 * i]
  local stored = redis.call('HGET', KEYS[1], tp) or '-1'
  if stored ~= ARGV[3 + 2 * i] then return tp .. '=' .. stored end
end
local at = 2 + 2 * n
local m = tonumber(ARGV[at])
for i = 0, m - 1 do
  redis.call('HSET', KEYS[1], ARGV[at + 1 + 2 * i], ARGV[at + 2 + 2 * i])
end
local first_state = at + 1 + 2 * m
for k = 2, #KEYS do
  redis.call('SET', KEYS[k], ARGV[first_state + k - 2])
end
return ''
"""


class CheckpointFenced(Exception):
    """Another owner checkpointed the partition since this one loaded it: forget and re-read."""


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def loads(data: bytes) -> Any:
    return json.loads(data)


def connect(url: str, max_connections: int = 64) -> Redis:
    """A client whose pool waits for a free connection instead of failing under bursts.

    Socket timeouts turn a hung Redis (stopped, partitioned) into errors that callers retry,
    instead of a wait without end.
    """
    return Redis(
        connection_pool=BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=None,
            socket_timeout=10.0,
            socket_connect_timeout=5.0,
        )
    )


class CheckpointStore:
    def __init__(self, redis: Redis, prefix: str, app_id: str) -> None:
        self.redis = redis
        self.base = f"{prefix}:{app_id}"
        self._save = redis.register_script(SAVE_FENCED)

    def _state_key(self, camera_id: str) -> str:
        return f"{self.base}:state:{camera_id}"

    @property
    def _offsets_key(self) -> str:
        return f"{self.base}:offsets"

    @property
    def _marks_key(self) -> str:
        return f"{self.base}:published"

    async def marks(self, tp: str) -> list[list[int]]:
        """What the partition's last owner published since its checkpoint, under which rules
        version: `[[last offset, version], ...]`, in offset order (see `alerts.progress`)."""
        value = await self.redis.hget(self._marks_key, tp)
        return loads(value) if value is not None else []

    async def mark(self, marks: dict[str, list[list[int]]]) -> None:
        """Record, before publishing, the versions the records up to each offset went in under."""
        if marks:
            await self.redis.hset(self._marks_key, mapping={tp: dumps(m) for tp, m in marks.items()})

    async def offset(self, tp: str) -> int:
        """Last applied offset of `topic:partition`, -1 when none."""
        value = await self.redis.hget(self._offsets_key, tp)
        return int(value) if value is not None else -1

    async def offsets(self) -> dict[str, int]:
        raw = await self.redis.hgetall(self._offsets_key)
        return {k.decode(): int(v) for k, v in raw.items()}

    async def camera(
        self, camera_id: str, expected: Mapping[str, int] | None = None
    ) -> dict[str, Any] | None:
        """A camera's state; with `expected`, only if those partitions are still at those offsets."""
        if not expected:
            data = await self.redis.get(self._state_key(camera_id))
            return loads(data) if data is not None else None
        tps = sorted(expected)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.get(self._state_key(camera_id))
            pipe.hmget(self._offsets_key, tps)
            data, stored = await pipe.execute()
        for tp, value in zip(tps, stored, strict=True):
            now = int(value) if value is not None else -1
            if now != expected[tp]:
                raise CheckpointFenced(f"{tp} is at {now} in Redis, this owner loaded {expected[tp]}")
        return loads(data) if data is not None else None

    async def save(
        self,
        states: dict[str, dict[str, Any]],
        offsets: dict[str, int],
        expected: Mapping[str, int] | None = None,
    ) -> None:
        """Atomically: all camera states of a batch and the offsets that produced them.

        With `expected` (partition -> offset this owner's state started from), nothing is saved
        and `CheckpointFenced` is raised when any of them is at another offset in Redis.
        """
        fenced = sorted((expected or {}).items())
        cameras = sorted(states)
        args: list[Any] = [len(fenced)]
        for tp, offset in fenced:
            args += [tp, str(offset)]
        args.append(len(offsets))
        for tp, offset in sorted(offsets.items()):
            args += [tp, str(offset)]
        args += [dumps(states[c]) for c in cameras]
        keys = [self._offsets_key, *(self._state_key(c) for c in cameras)]
        refused = await self._save(keys=keys, args=args)
        if refused:
            text = refused.decode() if isinstance(refused, bytes) else str(refused)
            raise CheckpointFenced(f"checkpoint refused: {text} in Redis, not where this owner started")

    async def reset(self) -> None:
        keys = [k async for k in self.redis.scan_iter(f"{self.base}:*")]
        if keys:
            await self.redis.delete(*keys)
