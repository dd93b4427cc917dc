"""One endpoint's delivery loop: sign, send, retry with backoff and jitter, honour 429.

Each endpoint has its own httpx client, concurrency limit and circuit breaker, so a slow or
dead receiver only ever delays its own alerts.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from dataclasses import dataclass
from typing import Literal

import httpx

from alerts import metrics
from alerts.webhooks.breaker import CircuitBreaker
from alerts.webhooks.dedup import DeliveryLedger
from alerts.webhooks.signing import sign_headers
from schemas.alert import AlertRecord
from sightline.config.alerts import WebhookSettings

log = logging.getLogger(__name__)
SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}
MAX_RETRY_AFTER_S = 300.0


@dataclass(frozen=True, slots=True)
class Outcome:
    status: Literal["delivered", "duplicate", "dead"]
    attempts: int = 0
    reason: str = ""


class _Retry(Exception):
    def __init__(self, reason: str, wait_s: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.wait_s = wait_s


class _Fatal(Exception):
    pass


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as delta-seconds or an HTTP date (RFC 9110), capped."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_S)
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return min(max(0.0, when - (time.time() if now is None else now)), MAX_RETRY_AFTER_S)


class Endpoint:
    def __init__(
        self,
        settings: WebhookSettings,
        ledger: DeliveryLedger,
        *,
        rng: random.Random | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.name = settings.name
        self.ledger = ledger
        self.secret = settings.secret_value()
        self.breaker = CircuitBreaker(settings.breaker_failures, settings.breaker_reset_s)
        self.limit = asyncio.Semaphore(settings.concurrency)
        self.rng = rng or random.Random()
        self.pending = 0
        self.client = httpx.AsyncClient(
            timeout=settings.timeout_s,
            limits=httpx.Limits(max_connections=settings.concurrency),
            transport=transport,
            headers={"User-Agent": "sightline-alerts/1", "Content-Type": "application/json"},
        )
        # Alert ids being delivered now: a second copy waits for the first instead of racing it.
        self._inflight: dict[str, asyncio.Future[Outcome]] = {}

    def wants(self, alert: AlertRecord) -> bool:
        s = self.settings
        return (
            (not s.types or alert.type in s.types)
            and (not s.cameras or alert.camera_id in s.cameras)
            and SEVERITY_RANK[alert.severity] >= SEVERITY_RANK[s.min_severity]
        )

    def backoff(self, attempt: int) -> float:
        """Exponential backoff; `jitter` of it is randomised so retries of many alerts spread."""
        s = self.settings
        base = min(s.backoff_max_s, s.backoff_initial_s * s.backoff_multiplier ** (attempt - 1))
        return base * (1 - s.jitter) + self.rng.uniform(0, base * s.jitter)

    async def deliver(self, alert: AlertRecord, body: bytes) -> Outcome:
        running = self._inflight.get(alert.alert_id)
        if running is not None:
            await asyncio.shield(running)
            return Outcome("duplicate")
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._inflight[alert.alert_id] = future
        self.pending += 1
        metrics.PENDING.labels(self.name).set(self.pending)
        try:
            outcome = await self._deliver(alert, body)
            future.set_result(outcome)
            return outcome
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody logs "never retrieved"
            raise
        finally:
            del self._inflight[alert.alert_id]
            self.pending -= 1
            metrics.PENDING.labels(self.name).set(self.pending)

    async def _deliver(self, alert: AlertRecord, body: bytes) -> Outcome:
        if await self.ledger.delivered(self.name, alert.alert_id):
            metrics.DUPLICATES.labels(self.name).inc()
            return Outcome("duplicate")
        s = self.settings
        deadline = time.monotonic() + s.max_age_s
        attempt, reason = 0, ""
        while True:
            if not self.breaker.allow():
                # Waiting on an open breaker costs no attempt: the endpoint was not even tried.
                if time.monotonic() >= deadline:
                    return Outcome("dead", attempt, f"circuit open for over {s.max_age_s:g}s; last: {reason}")
                await asyncio.sleep(max(self.breaker.retry_in(), 0.05) + self.rng.uniform(0, 0.05))
                continue
            attempt += 1
            try:
                await self._attempt(alert, body, attempt)
            except _Fatal as exc:
                return Outcome("dead", attempt, str(exc))
            except _Retry as exc:
                reason = exc.reason
                metrics.ATTEMPT_FAILURES.labels(self.name, reason.split(":")[0]).inc()
                wait = exc.wait_s if exc.wait_s is not None else self.backoff(attempt)
                if attempt >= s.max_attempts or time.monotonic() + wait >= deadline:
                    return Outcome("dead", attempt, f"gave up after {attempt} attempts: {reason}")
                await asyncio.sleep(wait)
                continue
            await self.ledger.mark(self.name, alert.alert_id)
            metrics.DELIVERED.labels(self.name).inc()
            metrics.LATENCY.labels(self.name).observe(max(0.0, time.time() - alert.capture_ns / 1e9))
            return Outcome("delivered", attempt)

    async def _attempt(self, alert: AlertRecord, body: bytes, attempt: int) -> None:
        """One signed POST; the caller has already been let through by the breaker."""
        headers = sign_headers(self.secret, body, alert.alert_id)
        headers["X-Sightline-Alert-Type"] = alert.type
        headers["X-Sightline-Attempt"] = str(attempt)
        try:
            async with self.limit:
                response = await self.client.post(self.settings.url, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            self._failed()
            raise _Retry(f"timeout: {type(exc).__name__}") from None
        except httpx.TransportError as exc:
            self._failed()
            raise _Retry(f"connection: {type(exc).__name__}: {exc}") from None
        except BaseException:
            self.breaker.release()
            raise
        code = response.status_code
        if 200 <= code < 300:
            self.breaker.success()
            metrics.BREAKER_OPEN.labels(self.name).set(0)
            return
        if code == 429:
            self.breaker.release()
            raise _Retry("http 429", wait_s=retry_after_seconds(response.headers.get("Retry-After")))
        if code >= 500:
            self._failed()
            raise _Retry(f"http {code}")
        self.breaker.release()
        raise _Fatal(f"http {code}: {response.text[:200]}")

    def _failed(self) -> None:
        self.breaker.failure()
        if self.breaker.state != "closed":
            metrics.BREAKER_OPEN.labels(self.name).set(1)

    async def aclose(self) -> None:
        await self.client.aclose()
