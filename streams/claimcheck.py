"""Claim check: frames too large for a Kafka record are parked in Redis with a TTL.

The record then carries only the Redis key (header `claim-check`) and an empty value.
"""

from __future__ import annotations

import redis

from schemas.errors import ContractError

KEY_PREFIX = "sightline:frame:"


class ClaimCheckStore:
    def __init__(self, url: str, ttl_s: int) -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=5)
        self.ttl_s = ttl_s

    @staticmethod
    def key_for(camera_id: str, seq: int, capture_ns: int) -> str:
        return f"{KEY_PREFIX}{camera_id}:{seq}:{capture_ns}"

    def put(self, key: str, payload: bytes) -> str:
        self.client.set(key, payload, ex=self.ttl_s)
        return key

    def get(self, key: str) -> bytes:
        """The claimed bytes; an expired or unknown key is a contract error, not a crash."""
        if not key.startswith(KEY_PREFIX):
            raise ContractError(f"claim-check key {key!r} is outside {KEY_PREFIX}*")
        payload = self.client.get(key)
        if payload is None:
            raise ContractError(f"claim-check key {key!r} has expired or never existed")
        return payload

    def close(self) -> None:
        self.client.close()
