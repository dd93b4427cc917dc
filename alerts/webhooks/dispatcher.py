"""Fan-out of one alert to every endpoint that wants it, each on its own clock.

`dispatch` resolves when every target has either acknowledged the alert or had it
dead-lettered; only then may the caller commit the alert's offset.
"""

from __future__ import annotations

import asyncio
import logging

import orjson
from redis.asyncio import Redis
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential

from alerts import metrics
from alerts.metrics import HEALTH
from alerts.settings import AlertsSettings
from alerts.webhooks.dead_letters import DeadLetterSink, Source
from alerts.webhooks.dedup import DeliveryLedger
from alerts.webhooks.delivery import Endpoint, Outcome
from schemas.alert import AlertRecord
from streams.evidence_urls import EvidenceUrlSettings, evidence_urls
from streams.retry import acall_with_retry

log = logging.getLogger(__name__)


class Dispatcher:
    def __init__(
        self,
        endpoints: list[Endpoint],
        dead_letters: DeadLetterSink,
        evidence: EvidenceUrlSettings | None = None,
    ) -> None:
        self.endpoints = endpoints
        self.dead_letters = dead_letters
        self.evidence = evidence  # signs the evidence URLs put in each body

    @classmethod
    def build(
        cls,
        settings: AlertsSettings,
        redis: Redis,
        dead_letters: DeadLetterSink,
        evidence: EvidenceUrlSettings | None = None,
    ) -> Dispatcher:
        ledger = DeliveryLedger(redis, settings.redis_prefix, settings.dedup_ttl_s)
        endpoints = [Endpoint(w, ledger) for w in settings.webhooks]
        return cls(endpoints, dead_letters, evidence)

    async def dispatch(
        self,
        alert: AlertRecord,
        body: bytes | None = None,
        source: Source | None = None,
        only: str | None = None,
    ) -> dict[str, Outcome]:
        payload = with_evidence_urls(body if body is not None else alert.encode(), alert, self.evidence)
        targets = [e for e in self.endpoints if e.wants(alert) and (only is None or e.name == only)]
        outcomes = await asyncio.gather(*(self._one(e, alert, payload, source) for e in targets))
        return {e.name: o for e, o in zip(targets, outcomes, strict=True)}

    async def _one(
        self, endpoint: Endpoint, alert: AlertRecord, body: bytes, source: Source | None
    ) -> Outcome:
        if endpoint.pending >= endpoint.settings.max_pending:
            outcome = Outcome("dead", 0, f"backlog of {endpoint.pending} exceeds max_pending")
        else:
            outcome = await self._deliver(endpoint, alert, body)
        if outcome.status == "dead":
            log.warning("alert %s to %s dead-lettered: %s", alert.alert_id, endpoint.name, outcome.reason)
            await self._dead_letter(endpoint.name, alert, body, outcome.reason, source)
            metrics.DEAD.labels(endpoint.name).inc()
        return outcome

    async def _deliver(self, endpoint: Endpoint, alert: AlertRecord, body: bytes) -> Outcome:
        """An unexpected error (a bug, a client failure) retries the delivery; it never drops it.

        The first try runs outside tenacity (its per-call setup is CPU the processor's one core
        spends per alert); only an error enters the retry loop."""
        try:
            return await endpoint.deliver(alert, body)
        except Exception:
            log.error(
                "delivering alert %s to %s failed; retrying", alert.alert_id, endpoint.name, exc_info=True
            )

        def log_retry(state: RetryCallState) -> None:
            log.error(
                "delivering alert %s to %s failed; retrying in %.1fs",
                alert.alert_id,
                endpoint.name,
                state.upcoming_sleep,
                exc_info=state.outcome.exception() if state.outcome else None,
            )

        retrying = AsyncRetrying(
            retry=retry_if_exception_type(Exception),
            wait=wait_exponential(multiplier=0.5, max=30.0),
            before_sleep=log_retry,
            reraise=True,
        )
        return await retrying(endpoint.deliver, alert, body)

    async def _dead_letter(
        self, endpoint: str, alert: AlertRecord, body: bytes, reason: str, src: Source | None
    ) -> None:
        """Retried until it sticks: an alert is either delivered or parked, never dropped."""
        await acall_with_retry(
            lambda: self.dead_letters.send(alert, body, endpoint, reason, src),
            health=HEALTH,
            dependency="kafka",
            retry_on=(Exception,),
            max_delay_s=30.0,
        )

    async def aclose(self) -> None:
        for endpoint in self.endpoints:
            await endpoint.aclose()


def with_evidence_urls(body: bytes, alert: AlertRecord, settings: EvidenceUrlSettings | None) -> bytes:
    """The alert's body with `evidence.snapshot_url` and `evidence.clip_url`: signed, expiring API
    URLs a receiver can fetch without a token (streams/evidence_urls.py). Unchanged when signing
    is not configured. The alert is never held back: until its evidence exists they answer 503."""
    urls = evidence_urls(settings, alert.alert_id) if settings is not None else None
    if urls is None:
        return body
    data = orjson.loads(body)
    data.setdefault("evidence", {}).update(snapshot_url=urls["snapshot"], clip_url=urls["clip"])
    return orjson.dumps(data)
