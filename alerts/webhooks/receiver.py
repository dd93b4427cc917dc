"""A real local HTTP webhook receiver (aiohttp, own thread) for tests, demos and the benchmark.

It verifies every request with the Standard Webhooks library (`standardwebhooks.Webhook.verify`,
exactly what a third-party receiver would run), records acknowledged deliveries with their
headers, and can be told to fail (status codes, Retry-After, slow responses) to exercise the
retry paths for real. Give it several secrets to play a receiver in the middle of a rotation.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aiohttp import web

from alerts.webhooks.signing import ID_HEADER, verify, webhooks


@dataclass(frozen=True, slots=True)
class Reply:
    status: int = 200
    delay_s: float = 0.0
    retry_after: str | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    alert_id: str
    idempotency_key: str | None
    type: str
    capture_ns: int
    received_ns: int
    verified: bool
    body: bytes
    headers: dict[str, str]


Behaviour = Callable[[int, str], Reply]


class Receiver:
    def __init__(self, secret: str | Sequence[str], host: str = "127.0.0.1", port: int = 0) -> None:
        self.keys = webhooks([secret] if isinstance(secret, str) else secret)
        self.host = host
        self.port = port
        self.behaviour: Behaviour = lambda attempt, alert_id: Reply()
        self.deliveries: list[Delivery] = []
        self.requests = 0
        self.bad_signatures = 0
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/hook"

    def ids(self) -> Counter[str]:
        with self._lock:
            return Counter(d.alert_id for d in self.deliveries)

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        with self._lock:
            self.requests += 1
            attempt = self.requests
        headers = dict(request.headers)
        ok = verify(self.keys, body, headers)
        if not ok:
            with self._lock:
                self.bad_signatures += 1
            return web.Response(status=401, text="bad signature")
        alert = json.loads(body)
        reply = self.behaviour(attempt, alert["alert_id"])
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        if 200 <= reply.status < 300:
            with self._lock:
                self.deliveries.append(
                    Delivery(alert["alert_id"], request.headers.get(ID_HEADER), alert["type"],
                             alert["capture_ns"], time.time_ns(), ok, body, headers)
                )  # fmt: skip
        extra = {"Retry-After": reply.retry_after} if reply.retry_after else None
        return web.Response(status=reply.status, headers=extra, text="ok" if reply.status < 300 else "no")

    def start(self) -> Receiver:
        self._thread = threading.Thread(target=self._run, name="webhook-receiver", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("receiver did not start")
        return self

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, backlog=1024)
        await site.start()
        self.port = runner.addresses[0][1]
        self._stop = asyncio.Event()
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
