"""The drift monitor's small HTTP endpoint: /metrics for Prometheus and /readyz from `Health`.

`/readyz` answers 503 while Kafka or Redis is down, with the dependency, the reason and for how long.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import make_wsgi_app

from streams.health import Health
from streams.listen import ListenError, describe


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass  # one line per Prometheus scrape is noise


def health_app(health: Health) -> Callable[..., Iterable[bytes]]:
    metrics = make_wsgi_app()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path not in ("/readyz", "/healthz"):
            return metrics(environ, start_response)
        ready = health.ready or path == "/healthz"
        body = {"ready": health.ready, "dependencies": health.snapshot()} if path == "/readyz" else {}
        payload = json.dumps({"status": "ok" if ready else "degraded", **body}).encode()
        start_response(
            "200 OK" if ready else "503 Service Unavailable",
            [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))],
        )
        return [payload]

    return app


def serve_health(health: Health, host: str, port: int, setting: str = "drift.metrics_port") -> _Server:
    """Serve in a daemon thread; `.shutdown()` stops it."""
    try:
        server = make_server(host, port, health_app(health), _Server, handler_class=_QuietHandler)
    except OSError as exc:
        raise ListenError(describe(host, port, setting, exc)) from None
    threading.Thread(target=server.serve_forever, name="drift-http", daemon=True).start()
    return server
