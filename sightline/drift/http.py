"""The drift monitor's HTTP endpoint: the shared one of streams/http_health.py on drift.metrics_port."""

from __future__ import annotations

from streams.health import Health
from streams.http_health import HealthServer
from streams.http_health import serve_health as _serve_health

__all__ = ["HealthServer", "serve_health"]


def serve_health(health: Health, host: str, port: int, setting: str = "drift.metrics_port") -> HealthServer:
    """Serve in a daemon thread; `.shutdown()` stops it."""
    return _serve_health(health, host, port, setting, name="drift-http")
