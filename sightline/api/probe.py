"""A background thread that checks Kafka and Redis every few seconds and records it in `Health`.

`/readyz` then answers from memory (which dependency is down, why, since when) instead of opening
new connections per request, and the `sightline_dependency_up` gauge stays current between probes.
"""

from __future__ import annotations

import threading

import redis

from sightline.config import SightlineConfig
from streams.health import Health
from streams.kafka import make_admin
from streams.kafka_probe import kafka_unreachable

PROBE_EVERY_S = 2.0
PROBE_TIMEOUT_S = 2.0


class DependencyProbe(threading.Thread):
    """Pings Redis and asks Kafka for metadata; one long-lived client of each."""

    def __init__(self, config: SightlineConfig, health: Health, every_s: float = PROBE_EVERY_S) -> None:
        super().__init__(name="api-probe", daemon=True)
        self.health, self.every_s = health, every_s
        self.stop_event = threading.Event()
        self.checked = threading.Event()  # set after the first round: /readyz waits for it
        self._admin = make_admin(
            config.kafka, "sightline-api-probe", **{"socket.timeout.ms": int(PROBE_TIMEOUT_S * 1000)}
        )
        self._redis = redis.Redis.from_url(
            config.redis.url, socket_timeout=PROBE_TIMEOUT_S, socket_connect_timeout=PROBE_TIMEOUT_S
        )

    def check(self) -> None:
        why = kafka_unreachable(self._admin, timeout_s=PROBE_TIMEOUT_S)
        if why is None:
            self.health.ok("kafka")
        else:
            self.health.degraded("kafka", why)
        try:
            self._redis.ping()
            self.health.ok("redis")
        except redis.RedisError as exc:
            self.health.degraded("redis", f"{type(exc).__name__}: {exc}")
        self.checked.set()

    def run(self) -> None:
        while not self.stop_event.is_set():
            self.check()
            self.stop_event.wait(self.every_s)

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=2 * PROBE_TIMEOUT_S + 1)
        self._redis.close()
