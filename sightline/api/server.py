"""Running the API under uvicorn: in the foreground (`sightline api`) or in a thread (tests, bench)."""

from __future__ import annotations

import threading
import time

import uvicorn
from fastapi import FastAPI

from sightline.config import SightlineConfig
from streams.devinfra import free_port
from streams.listen import bind_socket


def serve(config: SightlineConfig) -> None:
    """Blocking; Ctrl-C / SIGTERM shut down gracefully (open SSE streams get 5 s).

    The socket is bound before the app is built, so a taken port fails fast with one line
    (`ListenError`) instead of after loading the model, and uvicorn serves that very socket.
    """
    from sightline.api.app import create_app

    sock = bind_socket(config.api.host, config.api.port, "api.port")
    try:
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(config),
                host=config.api.host,
                port=config.api.port,
                log_level="info",
                timeout_graceful_shutdown=5,
            )
        )
        server.run(sockets=[sock])
    finally:
        sock.close()


class ServerThread:
    """uvicorn in a background thread on 127.0.0.1:<free port>; `with` waits until it serves."""

    def __init__(self, app: FastAPI, port: int | None = None, startup_timeout: float = 120.0) -> None:
        self.app = app
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", timeout_graceful_shutdown=2
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)
        self.startup_timeout = startup_timeout

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + self.startup_timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the API server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.app.state.stopping.set()
        self.server.should_exit = True
        self.thread.join(timeout=15)
