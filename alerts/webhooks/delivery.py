"""One endpoint's delivery: sign, send, and retry per alerts/webhooks/retry_policy.py.

Each endpoint has its own HTTP client, concurrency limit and circuit breaker, so a slow or
dead receiver only ever delays its own alerts. The client is aiohttp's: at a few thousand
alerts a second httpx cost ~3.7 ms of CPU per POST on the alert processor's one core, aiohttp
~0.4 ms (docs/alerts.md, "Where the processor's time goes").
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from typing import Literal

import aiohttp

from alerts import metrics
from alerts.settings import WHSEC, WebhookSettings
from alerts.webhooks.breaker import CircuitBreaker
from alerts.webhooks.dedup import DeliveryLedger
from alerts.webhooks.retry_policy import Budget, Fatal, Retry, http_error
from alerts.webhooks.signing import Signer
from schemas.alert import AlertRecord

log = logging.getLogger(__name__)
SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}


@dataclass(frozen=True, slots=True)
class Outcome:
    status: Literal["delivered", "duplicate", "dead"]
    attempts: int = 0  # HTTP requests sent, 429s included
    reason: str = ""


class Endpoint:
    def __init__(
        self,
        settings: WebhookSettings,
        ledger: DeliveryLedger,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.name = settings.name
        self.ledger = ledger
        secrets = [v.get_secret_value() for v in settings.secret_values()]
        self.signer = Signer(secrets)
        if not all(v.startswith(WHSEC) for v in secrets):
            log.warning(
                "webhook %s: a secret without the `whsec_` prefix is used as a raw key (deprecated); "
                "receivers using a Standard Webhooks library need its `whsec_` form",
                self.name,
            )
        self.breaker = CircuitBreaker(settings.breaker_failures, settings.breaker_reset_s)
        self.limit = asyncio.Semaphore(settings.concurrency)
        self.rng = rng or random.Random()
        self.pending = 0
        # Made on first use: an aiohttp session belongs to the event loop it was created in.
        self._client: aiohttp.ClientSession | None = None
        # Alert ids being delivered now: a second copy waits for the first instead of racing it.
        self._inflight: dict[str, asyncio.Future[Outcome]] = {}

    @property
    def client(self) -> aiohttp.ClientSession:
        if self._client is None:
            self._client = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.settings.timeout_s),
                connector=aiohttp.TCPConnector(limit=self.settings.concurrency),
                headers={"User-Agent": "sightline-alerts/1", "Content-Type": "application/json"},
            )
        return self._client

    def wants(self, alert: AlertRecord) -> bool:
        s = self.settings
        return (
            (not s.types or alert.type in s.types)
            and (not s.cameras or alert.camera_id in s.cameras)
            and SEVERITY_RANK[alert.severity] >= SEVERITY_RANK[s.min_severity]
        )

    async def deliver(self, alert: AlertRecord, body: bytes, msg_id: str | None = None) -> Outcome:
        """`msg_id` (the `webhook-id`, and the ledger's key) defaults to the alert id; another
        event about the alert (`alert.evidence_ready`) passes its own stable id."""
        msg_id = msg_id or alert.alert_id
        running = self._inflight.get(msg_id)
        if running is not None:
            await asyncio.shield(running)
            return Outcome("duplicate")
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._inflight[msg_id] = future
        self.pending += 1
        metrics.PENDING.labels(self.name).set(self.pending)
        try:
            outcome = await self._deliver(alert, body, msg_id)
            future.set_result(outcome)
            return outcome
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody logs "never retrieved"
            raise
        finally:
            del self._inflight[msg_id]
            self.pending -= 1
            metrics.PENDING.labels(self.name).set(self.pending)

    async def _deliver(self, alert: AlertRecord, body: bytes, msg_id: str) -> Outcome:
        if await self.ledger.delivered(self.name, msg_id):
            metrics.DUPLICATES.labels(self.name).inc()
            return Outcome("duplicate")
        try:
            text = body.decode()  # the spec signs text; Standard Webhooks libraries verify UTF-8 bodies
        except UnicodeDecodeError:
            return Outcome("dead", 0, "body is not UTF-8; cannot be signed per Standard Webhooks")
        budget = Budget(self.settings, self.rng, self.breaker.retry_in)
        try:
            await budget.retrying()(self._try, alert, msg_id, body, text, budget)
        except Fatal as exc:
            return Outcome("dead", budget.requests, str(exc))
        except Retry:
            return Outcome("dead", budget.requests, budget.gave_up)
        await self.ledger.mark(self.name, msg_id)
        metrics.DELIVERED.labels(self.name).inc()
        if msg_id == alert.alert_id:  # the alert itself: capture -> acknowledged
            metrics.LATENCY.labels(self.name).observe(max(0.0, time.time() - alert.capture_ns / 1e9))
        return Outcome("delivered", budget.requests)

    async def _try(self, alert: AlertRecord, msg_id: str, body: bytes, text: str, budget: Budget) -> None:
        probe = self.breaker.state == "half-open"
        if not self.breaker.allow():
            # Waiting on an open breaker costs no attempt: the endpoint was not even tried.
            raise Retry("circuit open", "circuit_open")
        budget.requests += 1
        try:
            await self._attempt(alert, msg_id, body, text, budget.requests)
        except Retry as exc:
            metrics.ATTEMPT_FAILURES.labels(self.name, exc.reason.split(":")[0]).inc()
            if probe and exc.kind == "failure" and self.breaker.state == "open":
                # Its failure opened the breaker again: the endpoint is still down for everyone (see
                # the retry policy's table). A probe answered 429 without Retry-After still counts.
                raise Retry(exc.reason, "probe") from None
            raise

    async def _attempt(self, alert: AlertRecord, msg_id: str, body: bytes, text: str, attempt: int) -> None:
        """One signed POST; the caller has already been let through by the breaker."""
        try:
            async with self.limit:
                # Signed per attempt, once a slot is free: the receiver checks the timestamp is fresh.
                headers = self.signer.headers(msg_id, text)
                headers["X-Sightline-Alert-Type"] = alert.type
                headers["X-Sightline-Attempt"] = str(attempt)
                async with self.client.post(self.settings.url, data=body, headers=headers) as response:
                    status, retry_after = response.status, response.headers.get("Retry-After")
                    reply = await response.read()
        except TimeoutError as exc:  # aiohttp's timeouts (connect, read, total) are TimeoutErrors
            self._failed()
            raise Retry(f"timeout: {type(exc).__name__}") from None
        except aiohttp.ClientError as exc:
            self._failed()
            raise Retry(f"connection: {type(exc).__name__}: {exc}") from None
        except BaseException:
            self.breaker.release()
            raise
        if 200 <= status < 300:
            self.breaker.success()
            metrics.BREAKER_OPEN.labels(self.name).set(0)
            return
        error, breaker_failure = http_error(status, retry_after, reply.decode(errors="replace"))
        if breaker_failure:
            self._failed()
        else:
            self.breaker.release()
        raise error

    def _failed(self) -> None:
        self.breaker.failure()
        if self.breaker.state != "closed":
            metrics.BREAKER_OPEN.labels(self.name).set(1)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
