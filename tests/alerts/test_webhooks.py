"""Webhook delivery against a real local HTTP receiver and a real Redis."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import orjson
import pytest
from redis.asyncio import Redis
from standardwebhooks import Webhook, WebhookVerificationError

from alerts.settings import AlertsSettings
from alerts.webhooks.breaker import CircuitBreaker
from alerts.webhooks.dead_letters import Source
from alerts.webhooks.dispatcher import Dispatcher
from alerts.webhooks.receiver import Receiver, Reply
from alerts.webhooks.retry_policy import retry_after_seconds
from alerts.webhooks.signing import Signer
from schemas.alert import AlertRecord, TimeWindow, alert_id
from streams.evidence_urls import EvidenceUrlSettings, verify
from tests.conftest import Stack

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # the Standard Webhooks spec's example secret


def make_alert(i: int, type: str = "defect", severity: str = "warning") -> AlertRecord:
    now = time.time_ns()
    return AlertRecord(
        alert_id=alert_id("test", uuid.uuid4().hex, i),
        type=type,
        severity=severity,
        camera_id="cam",
        rule="r",
        window=TimeWindow(start_ns=now, end_ns=now),
        capture_ns=now,
        created_ns=now,
        summary=f"alert {i}",
    )


class ListSink:
    def __init__(self) -> None:
        self.items: list[tuple[str, str, str]] = []

    async def send(
        self, alert: AlertRecord, body: bytes, endpoint: str, reason: str, source: Source | None
    ) -> None:
        self.items.append((alert.alert_id, endpoint, reason))


def settings(*hooks: dict) -> AlertsSettings:
    base = {
        "secret": SECRET,
        "timeout_s": 0.5,
        "max_attempts": 12,
        "backoff_initial_s": 0.05,
        "backoff_max_s": 0.3,
        "breaker_failures": 3,
        "breaker_reset_s": 0.3,
    }
    return AlertsSettings(webhooks=[{**base, **h} for h in hooks], redis_prefix=f"t-{uuid.uuid4().hex[:8]}")


async def dispatch_all(
    stack: Stack, cfg: AlertsSettings, alerts: list[AlertRecord], evidence: EvidenceUrlSettings | None = None
) -> tuple[list, ListSink]:
    redis = Redis.from_url(stack.config.redis.url)
    sink = ListSink()
    dispatcher = Dispatcher.build(cfg, redis, sink, evidence)
    try:
        results = await asyncio.gather(*(dispatcher.dispatch(a) for a in alerts))
    finally:
        await dispatcher.aclose()
        await redis.aclose()
    return results, sink


def test_signature_round_trip_and_rejections() -> None:
    """Signed by us, checked by the spec authors' library, as any receiver would."""
    body = '{"a":1}'
    now = time.time()
    headers = Signer([SECRET]).headers("abc", body, now=now)
    assert headers["webhook-id"] == headers["Idempotency-Key"] == "abc"
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(SECRET).verify(body, headers) == {"a": 1}

    def refused(data: str, hdrs: dict[str, str], secret: str = SECRET) -> bool:
        try:
            Webhook(secret).verify(data, hdrs)
        except WebhookVerificationError:
            return True
        return False

    assert refused('{"a":2}', headers)  # tampered body
    assert refused(body, headers, secret="whsec_" + "A" * 32)  # wrong key
    assert refused(body, Signer([SECRET]).headers("abc", body, now=now - 600))  # replayed long after
    assert refused(body, {**headers, "webhook-timestamp": str(int(now) - 1)})  # timestamp swapped
    assert refused(body, {**headers, "webhook-id": "abd"})  # id swapped: dedup key is signed too


def test_retry_after_parsing() -> None:
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412475.0) == 5.0
    assert retry_after_seconds("soon") is None


def test_breaker_opens_probes_and_closes() -> None:
    now = [0.0]
    breaker = CircuitBreaker(failures=2, reset_s=5, clock=lambda: now[0])
    breaker.failure()
    assert breaker.allow()
    breaker.failure()
    assert breaker.state == "open" and not breaker.allow()
    now[0] = 5.0
    assert breaker.allow() and not breaker.allow()  # exactly one probe when half-open
    breaker.failure()
    assert breaker.state == "open"
    now[0] = 10.0
    assert breaker.allow()
    breaker.success()
    assert breaker.state == "closed" and breaker.allow()


def test_flaky_receiver_gets_every_alert_exactly_once(stack: Stack) -> None:
    with Receiver(SECRET) as rx:
        # 500s for the first 15 requests, then slow (timeouts) until request 25, then healthy.
        def flaky(n: int, _id: str) -> Reply:
            if n <= 15:
                return Reply(503)
            if n <= 20:
                return Reply(504, delay_s=1.0)  # hangs longer than timeout_s: the client gives up
            return Reply(200)

        rx.behaviour = flaky
        alerts = [make_alert(i) for i in range(20)]
        results, sink = asyncio.run(dispatch_all(stack, settings({"name": "ops", "url": rx.url}), alerts))
        time.sleep(1.1)  # let the slow replies that the client abandoned finish
        assert sink.items == []
        assert all(r["ops"].status == "delivered" for r in results)
        assert any(r["ops"].attempts > 1 for r in results)
        assert rx.ids() == {a.alert_id: 1 for a in alerts}
        assert all(d.verified and d.idempotency_key == d.alert_id for d in rx.deliveries)
        assert all(Webhook(SECRET).verify(d.body, d.headers)["alert_id"] == d.alert_id for d in rx.deliveries)
        assert rx.bad_signatures == 0


def test_client_errors_are_dead_lettered_at_once_and_429_waits(stack: Stack) -> None:
    with Receiver(SECRET) as gone, Receiver(SECRET) as busy:
        gone.behaviour = lambda n, _id: Reply(404)
        busy.behaviour = lambda n, _id: Reply(429, retry_after="1") if n == 1 else Reply(200)
        cfg = settings({"name": "gone", "url": gone.url}, {"name": "busy", "url": busy.url})
        started = time.monotonic()
        results, sink = asyncio.run(dispatch_all(stack, cfg, [make_alert(1)]))
        assert results[0]["gone"].status == "dead" and results[0]["gone"].attempts == 1
        assert "http 404" in results[0]["gone"].reason
        assert results[0]["busy"].status == "delivered" and results[0]["busy"].attempts == 2
        assert time.monotonic() - started >= 1.0  # honoured Retry-After: 1
        assert [(e, r[:8]) for _, e, r in sink.items] == [("gone", "http 404")]
        assert gone.requests == 1


def test_same_alert_is_delivered_once_even_when_dispatched_twice(stack: Stack) -> None:
    with Receiver(SECRET) as rx:
        rx.behaviour = lambda n, _id: Reply(200, delay_s=0.2)
        cfg = settings({"name": "ops", "url": rx.url})
        alert = make_alert(1)

        async def go() -> list:
            redis = Redis.from_url(stack.config.redis.url)
            dispatcher = Dispatcher.build(cfg, redis, ListSink())
            try:
                first = await asyncio.gather(dispatcher.dispatch(alert), dispatcher.dispatch(alert))
                later = await dispatcher.dispatch(alert)  # after delivery: found in the Redis ledger
            finally:
                await dispatcher.aclose()
                await redis.aclose()
            return [*first, later]

        results = asyncio.run(go())
        assert sorted(r["ops"].status for r in results) == ["delivered", "duplicate", "duplicate"]
        assert rx.ids() == {alert.alert_id: 1}


def test_slow_endpoint_does_not_hold_back_the_others_and_filters_apply(stack: Stack) -> None:
    with Receiver(SECRET) as slow, Receiver(SECRET) as fast:
        slow.behaviour = lambda n, _id: Reply(200, delay_s=2.0)
        cfg = settings(
            {"name": "slow", "url": slow.url, "timeout_s": 5, "concurrency": 1},
            {"name": "fast", "url": fast.url, "types": ["defect"], "min_severity": "warning"},
        )
        alerts = [make_alert(i) for i in range(10)] + [make_alert(99, type="tally", severity="info")]

        async def go() -> float:
            redis = Redis.from_url(stack.config.redis.url)
            dispatcher = Dispatcher.build(cfg, redis, ListSink())
            tasks = [asyncio.create_task(dispatcher.dispatch(a)) for a in alerts]
            started = time.monotonic()
            while len(fast.ids()) < 10:
                await asyncio.sleep(0.02)
            took = time.monotonic() - started
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await dispatcher.aclose()
            await redis.aclose()
            return took

        took = asyncio.run(go())
        assert took < 1.5, f"fast endpoint waited {took:.1f}s behind the slow one"
        assert len(slow.ids()) <= 1
        assert alerts[-1].alert_id not in fast.ids()  # type and severity filters


@pytest.mark.timeout(60)
def test_dead_endpoint_trips_the_breaker_and_parks_alerts(stack: Stack) -> None:
    from streams.devinfra import free_port

    cfg = settings(
        {"name": "dead", "url": f"http://127.0.0.1:{free_port()}/hook", "max_attempts": 4, "max_age_s": 2}
    )
    results, sink = asyncio.run(dispatch_all(stack, cfg, [make_alert(i) for i in range(30)]))
    assert all(r["dead"].status == "dead" for r in results)
    assert len(sink.items) == 30
    # Each alert gave up by attempts or by age (max_age_s), whichever came first; never hung.
    assert all(r.startswith(("gave up after", "circuit open for over 2s")) for *_, r in sink.items)


def test_the_body_carries_signed_evidence_urls_a_receiver_can_fetch(stack: Stack) -> None:
    """With evidence URL signing configured, every webhook body names its alert's snapshot and clip
    as absolute, signed, expiring API URLs; without it, the body is the alert record unchanged."""
    evidence = EvidenceUrlSettings(secret="evidence-secret-0123456789", public_url="https://sl.example.com")
    alert = make_alert(1)
    with Receiver(SECRET) as rx:
        asyncio.run(dispatch_all(stack, settings({"name": "ops", "url": rx.url}), [alert], evidence))
        asyncio.run(dispatch_all(stack, settings({"name": "plain", "url": rx.url}), [make_alert(2)]))
        signed, plain = rx.deliveries
    assert signed.verified and plain.verified
    urls = orjson.loads(signed.body)["evidence"]
    for part, file in (("snapshot_url", "snapshot.jpg"), ("clip_url", "clip.mp4")):
        url = httpx.URL(urls[part])
        assert url.host == "sl.example.com" and url.path == f"/v1/alerts/{alert.alert_id}/{file}"
        query = dict(url.params)
        assert verify(url.path, query["expires"], query["sig"], evidence.secrets()) is None
        assert verify(url.path, query["expires"], query["sig"], ["another-secret-0123456789"]) is not None
    assert "snapshot_url" not in orjson.loads(plain.body).get("evidence", {})
