"""Claim check: frames too large for a Kafka record are parked in Redis with a TTL.

The record then carries only the Redis key (header `claim-check`) and an empty value. Reads
ride out a Redis outage (retried with backoff, reported as degraded) when given a `Health`; only
a key that is really gone (expired, never written) is the record's fault.
"""

from __future__ import annotations

import threading

import redis

from schemas.errors import ContractError
from streams.health import Health
from streams.retry import call_with_retry

KEY_PREFIX = "sightline:frame:"
_REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError)


class ClaimCheckUnavailable(RuntimeError):
    """Redis was still away when the process was asked to stop: the frame is not dead, just unread."""


class ClaimCheckStore:
    def __init__(
        self, url: str, ttl_s: int, *, health: Health | None = None, stop: threading.Event | None = None
    ) -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=5)
        self.ttl_s = ttl_s
        self.health = health
        self.stop = stop

    @staticmethod
    def key_for(camera_id: str, seq: int, capture_ns: int) -> str:
        return f"{KEY_PREFIX}{camera_id}:{seq}:{capture_ns}"

    def put(self, key: str, payload: bytes) -> str:
        self.client.set(key, payload, ex=self.ttl_s)
        return key

    def _call(self, fn):  # noqa: ANN001, ANN202 - a thin wrapper around call_with_retry
        if self.health is None:
            return fn()
        try:
            return call_with_retry(
                fn, health=self.health, dependency="redis", retry_on=_REDIS_DOWN, stop=self.stop
            )
        except _REDIS_DOWN as exc:  # only re-raised once `stop` is set
            raise ClaimCheckUnavailable(f"Redis unavailable: {exc}") from exc

    def get(self, key: str) -> bytes:
        """The claimed bytes; an expired or unknown key is a contract error, not a crash."""
        if not key.startswith(KEY_PREFIX):
            raise ContractError(f"claim-check key {key!r} is outside {KEY_PREFIX}*")
        payload = self._call(lambda: self.client.get(key))
        if payload is None:
            raise ContractError(f"claim-check key {key!r} has expired or never existed")
        return payload

    def keep(self, key: str) -> bool:
        """Drop the key's TTL (a dead-lettered frame's image, kept for replay); False if it is gone."""
        if not key.startswith(KEY_PREFIX):
            return False
        return bool(self._call(lambda: self.client.persist(key)))

    def close(self) -> None:
        self.client.close()
