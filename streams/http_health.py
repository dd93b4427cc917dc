"""A process's small HTTP endpoint: /metrics for Prometheus, /readyz and /healthz from `Health`.

`/readyz` answers 503 while a dependency (Kafka, Redis) is down, with the dependency, the reason
and for how long: the process is waiting it out and should get no traffic, but not be restarted.
`/healthz` answers 503 once one of the process's loops has not beaten for `liveness_timeout_s`
(streams/health.py): /metrics is served from a thread of its own, so it answers even when the
main loop is dead, and only the loop's beat can tell a liveness probe that it is.

wsgiref rather than a web framework: three fixed routes next to prometheus_client's own WSGI app.
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

DEFAULT_LIVENESS_TIMEOUT_S = 60.0


class HealthServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    endpoints: HealthApp

    def attach(self, health: Health) -> None:
        """Serve this `Health` from now on (built after the server started, e.g. after a model load)."""
        self.endpoints.health = health


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass  # one line per Prometheus scrape is noise


class HealthApp:
    """The WSGI app. `health` may be attached after the server started (while a model loads):
    until then /readyz says "starting" (503) and /healthz 200."""

    def __init__(self, health: Health | None, liveness_timeout_s: float = DEFAULT_LIVENESS_TIMEOUT_S) -> None:
        self.health = health
        self.liveness_timeout_s = liveness_timeout_s
        self._metrics = make_wsgi_app()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/readyz":
            ok, body = self._ready()
        elif path == "/healthz":
            ok, body = self._live()
        else:
            return self._metrics(environ, start_response)
        payload = json.dumps(body).encode()
        start_response(
            "200 OK" if ok else "503 Service Unavailable",
            [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))],
        )
        return [payload]

    def _ready(self) -> tuple[bool, dict[str, object]]:
        health = self.health
        if health is None:
            return False, {"status": "starting", "ready": False, "dependencies": {}}
        ready = health.ready
        return ready, {
            "status": "ok" if ready else "degraded",
            "ready": ready,
            "dependencies": health.snapshot(),
        }

    def _live(self) -> tuple[bool, dict[str, object]]:
        health = self.health
        if health is None:
            return True, {"status": "ok", "loops": {}}
        alive, loops = health.liveness(self.liveness_timeout_s)
        return alive, {
            "status": "ok" if alive else "stuck",
            "timeout_s": self.liveness_timeout_s,
            "loops": loops,
        }


def serve_health(
    health: Health | None,
    host: str,
    port: int,
    setting: str,
    *,
    liveness_timeout_s: float = DEFAULT_LIVENESS_TIMEOUT_S,
    name: str = "health-http",
) -> HealthServer:
    """Serve in a daemon thread; `.attach()` sets a late `Health`, `.shutdown()` stops it.

    A taken port raises `ListenError` naming `setting`.
    """
    app = HealthApp(health, liveness_timeout_s)
    try:
        server = make_server(host, port, app, HealthServer, handler_class=_QuietHandler)
    except OSError as exc:
        raise ListenError(describe(host, port, setting, exc)) from None
    server.endpoints = app
    threading.Thread(target=server.serve_forever, name=name, daemon=True).start()
    return server
