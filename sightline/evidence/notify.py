"""`alert.evidence_ready`: a second Standard Webhooks event, sent by `sightline evidence` once an
alert's evidence record is finished, to each endpoint whose `evidence_ready` is set.

It is sent from here because only this process knows when the evidence is stored. Signing,
retries, the circuit breaker and the delivery ledger are alerts/webhooks' own (`Endpoint`), with
the endpoint's settings and secrets. The `webhook-id` is `<alert_id>.evidence_ready`: stable per
alert, so a retry, a replayed alert or a restarted evidence process sends the same id, and the
ledger in Redis skips what an endpoint already acknowledged. Deliveries run on an asyncio loop in
a thread of their own, so rendering never waits for a receiver; the service commits an alert's
offset only once its event is acknowledged (or given up on), so a crash resends, never drops.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from datetime import UTC, datetime
from typing import Any

import orjson
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential

from alerts.checkpoint import connect
from alerts.webhooks.dedup import DeliveryLedger
from alerts.webhooks.delivery import Endpoint, Outcome
from schemas.alert import AlertRecord
from sightline.config import SightlineConfig
from sightline.evidence.metrics import READY
from sightline.evidence.record import EvidenceRecord
from streams.evidence_urls import FILES, EvidenceUrlSettings, evidence_urls

log = logging.getLogger(__name__)

EVENT = "alert.evidence_ready"
Outcomes = dict[str, Outcome]


def event_id(alert_id: str) -> str:
    """The event's `webhook-id`: the same for every send of one alert's event, never the alert's own."""
    return f"{alert_id}.evidence_ready"


def event_body(record: EvidenceRecord, urls: EvidenceUrlSettings | None) -> bytes:
    """The alert's identity, the record's status per part, and signed URLs of the parts stored."""
    alert, signed = record.alert, evidence_urls(urls, record.alert_id) if urls is not None else None
    evidence: dict[str, Any] = {"status": record.status}
    for part in FILES:
        state = record.parts[part]
        there = state.status in ("stored", "partial")
        evidence[f"{part}_url"] = signed[part] if signed is not None and there else None
        evidence[part] = {"status": state.status, "missing": [gap.reason for gap in state.missing]}
    when = datetime.fromtimestamp(record.updated_ns / 1e9, tz=UTC).isoformat().replace("+00:00", "Z")
    return orjson.dumps(
        {
            "type": EVENT,
            "timestamp": when,
            "alert_id": record.alert_id,
            "alert_type": alert["type"],
            "camera_id": alert["camera_id"],
            "rule": alert["rule"],
            "capture_ns": alert["capture_ns"],
            "created_ns": alert["created_ns"],
            "evidence": evidence,
        }
    )


def _done(result: Outcomes) -> concurrent.futures.Future[Outcomes]:
    future: concurrent.futures.Future[Outcomes] = concurrent.futures.Future()
    future.set_result(result)
    return future


class EvidenceNotifier:
    """Sends `alert.evidence_ready` on a loop of its own; `submit` returns a future per alert."""

    def __init__(self, config: SightlineConfig) -> None:
        settings = config.alerts
        self.urls = config.evidence.urls
        hooks = [w for w in settings.webhooks if w.evidence_ready]
        self.endpoints: list[Endpoint] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        if not hooks:
            return
        if evidence_urls(self.urls, "0" * 32) is None:
            log.warning(
                "evidence: %s is sent without URLs: evidence.urls needs a secret and a public_url", EVENT
            )
        self.redis = connect(config.redis.url)
        ledger = DeliveryLedger(self.redis, settings.redis_prefix, settings.dedup_ttl_s)
        self.endpoints = [Endpoint(w, ledger) for w in hooks]
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="evidence-ready", daemon=True)
        self.thread.start()

    def wants(self, alert: AlertRecord) -> bool:
        return any(e.wants(alert) for e in self.endpoints)

    def submit(self, alert: AlertRecord, record: EvidenceRecord) -> concurrent.futures.Future[Outcomes]:
        """Done once every endpoint that wants the alert acknowledged the event or gave up on it."""
        if self.loop is None or not self.wants(alert):
            return _done({})
        return asyncio.run_coroutine_threadsafe(self._send(alert, record), self.loop)

    async def _send(self, alert: AlertRecord, record: EvidenceRecord) -> Outcomes:
        body = event_body(record, self.urls)
        targets = [e for e in self.endpoints if e.wants(alert)]
        outcomes = await asyncio.gather(*(self._one(e, alert, body) for e in targets))
        return {e.name: o for e, o in zip(targets, outcomes, strict=True)}

    async def _one(self, endpoint: Endpoint, alert: AlertRecord, body: bytes) -> Outcome:
        """The endpoint's own retry policy; an unexpected error (a bug) retries, never drops."""
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(Exception), wait=wait_exponential(multiplier=0.5, max=30.0)
        )
        outcome: Outcome = await retrying(endpoint.deliver, alert, body, event_id(alert.alert_id))
        READY.labels(endpoint.name, outcome.status).inc()
        if outcome.status == "dead":
            # Not dead-lettered: the alert's own webhook already carried the same URLs.
            log.warning("%s of alert %s to %s given up: %s", EVENT, alert.alert_id, endpoint.name,
                        outcome.reason)  # fmt: skip
        return outcome

    def close(self) -> None:
        """Stops sending: events not acknowledged yet are sent again after a restart."""
        if self.loop is None:
            return
        loop = self.loop

        async def shut() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for endpoint in self.endpoints:
                await endpoint.aclose()
            await self.redis.aclose()

        try:
            asyncio.run_coroutine_threadsafe(shut(), loop).result(10)
        except (concurrent.futures.TimeoutError, RuntimeError) as exc:
            log.debug("evidence notifier close: %s", exc)
        loop.call_soon_threadsafe(loop.stop)
        self.thread.join(10)
        loop.close()
        self.loop = None
