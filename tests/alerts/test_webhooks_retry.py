"""The retry policy (alerts/webhooks/retry_policy.py) against the real receiver and Redis."""

from __future__ import annotations

import asyncio
import time

from alerts.webhooks.receiver import Receiver, Reply
from alerts.webhooks.retry_policy import Fatal, Retry, http_error
from tests.alerts.test_webhooks import SECRET, dispatch_all, make_alert, settings
from tests.conftest import Stack


def test_status_table() -> None:
    def verdict(code: int, retry_after: str | None = None) -> tuple[str, str, float | None, bool]:
        error, breaker_failure = http_error(code, retry_after, "x")
        if isinstance(error, Fatal):
            return "fatal", "", None, breaker_failure
        assert isinstance(error, Retry)
        return "retry", error.kind, error.wait_s, breaker_failure

    assert verdict(408) == ("retry", "failure", None, True)
    assert verdict(425) == ("retry", "failure", None, False)
    assert verdict(425, "2") == ("retry", "failure", 2.0, False)
    assert verdict(429, "3") == ("retry", "throttled", 3.0, False)
    assert verdict(429) == ("retry", "failure", None, False)  # no Retry-After: an ordinary attempt
    assert verdict(503, "1") == ("retry", "failure", 1.0, True)
    assert verdict(500) == ("retry", "failure", None, True)
    assert verdict(400)[0] == verdict(404)[0] == verdict(302)[0] == verdict(410)[0] == "fatal"


def test_408_and_425_are_retried(stack: Stack) -> None:
    with Receiver(SECRET) as rx:
        rx.behaviour = lambda n, _id: {1: Reply(408), 2: Reply(425)}.get(n, Reply(200))
        results, sink = asyncio.run(
            dispatch_all(stack, settings({"name": "ops", "url": rx.url}), [make_alert(1)])
        )
    assert results[0]["ops"].status == "delivered" and results[0]["ops"].attempts == 3
    assert sink.items == [] and rx.requests == 3


def test_429_waits_use_no_attempts_but_5xx_do(stack: Stack) -> None:
    """max_attempts=2: four 429s pass, while the second 503 dead-letters the alert."""
    replies = {1: Reply(429, retry_after="0"), 2: Reply(429, retry_after="0"), 3: Reply(503),
               4: Reply(429, retry_after="0"), 5: Reply(429, retry_after="0"), 6: Reply(503)}  # fmt: skip
    with Receiver(SECRET) as rx, Receiver(SECRET) as busy:
        rx.behaviour = lambda n, _id: replies.get(n, Reply(200))
        busy.behaviour = lambda n, _id: Reply(429, retry_after="0") if n <= 5 else Reply(200)
        cfg = settings(
            {"name": "ops", "url": rx.url, "max_attempts": 2},
            {"name": "busy", "url": busy.url, "max_attempts": 1},
        )
        results, sink = asyncio.run(dispatch_all(stack, cfg, [make_alert(1)]))
    ops, ok = results[0]["ops"], results[0]["busy"]
    assert ops.status == "dead" and ops.attempts == 6
    assert ops.reason.startswith("gave up after 6 attempts: http 503")
    assert ok.status == "delivered" and ok.attempts == 6  # five 429s did not use its one attempt
    assert [e for _, e, _ in sink.items] == ["ops"]


def test_retry_after_total_is_bounded_by_its_own_budget(stack: Stack) -> None:
    with Receiver(SECRET) as rx:
        rx.behaviour = lambda n, _id: Reply(429, retry_after="2")
        hook = {"name": "ops", "url": rx.url, "max_attempts": 1, "max_age_s": 5}
        cfg = settings({**hook, "max_retry_after_total_s": 3})
        started = time.monotonic()
        results, sink = asyncio.run(dispatch_all(stack, cfg, [make_alert(1)]))
        took = time.monotonic() - started
    outcome = results[0]["ops"]
    # Waited the first Retry-After (2 s of 3 s); a second 2 s wait would pass the budget, so it
    # gives up at once instead of waiting (the bound leaves 1.5 s for a loaded machine).
    assert outcome.status == "dead" and outcome.attempts == 2 and rx.requests == 2
    assert "max_retry_after_total_s=3s" in outcome.reason
    assert 2.0 <= took < 3.5, took
    assert [e for _, e, _ in sink.items] == ["ops"]


def test_retry_after_zero_forever_is_not_a_hot_loop(stack: Stack) -> None:
    """Each 429 wait is at least backoff_initial_s, and counts against the Retry-After budget."""
    with Receiver(SECRET) as rx:
        rx.behaviour = lambda n, _id: Reply(429, retry_after="0")
        hook = {"name": "ops", "url": rx.url, "max_attempts": 1, "max_age_s": 5, "backoff_initial_s": 0.2}
        results, _ = asyncio.run(
            dispatch_all(stack, settings({**hook, "max_retry_after_total_s": 0.5}), [make_alert(1)])
        )
    outcome = results[0]["ops"]
    # Waits of 0.2 s + 0.2 s fit in 0.5 s; a third would not.
    assert outcome.status == "dead" and outcome.attempts == rx.requests == 3, outcome
    assert "max_retry_after_total_s=0.5s" in outcome.reason


def test_failed_breaker_probes_use_no_attempts(stack: Stack) -> None:
    """An outage of ~20 probes against 3 attempts an alert: the alerts that happen to carry the
    breaker's probes are not dead-lettered for it, and every alert arrives once the receiver is back."""
    from streams.devinfra import free_port

    port = free_port()
    cfg = settings(
        {
            "name": "ops",
            "url": f"http://127.0.0.1:{port}/hook",
            "max_attempts": 3,
            "breaker_failures": 2,
            "breaker_reset_s": 0.1,
            "max_age_s": 30,
        }
    )
    alerts = [make_alert(i) for i in range(4)]
    rx = Receiver(SECRET, port=port)

    async def outage_then_back() -> tuple[list, object]:
        async def back_later() -> None:
            await asyncio.sleep(2.0)
            await asyncio.to_thread(rx.start)

        comeback = asyncio.create_task(back_later())
        try:
            return await dispatch_all(stack, cfg, alerts)
        finally:
            await comeback

    try:
        results, sink = asyncio.run(outage_then_back())
    finally:
        rx.stop()
    assert [r["ops"].status for r in results] == ["delivered"] * 4, [r["ops"] for r in results]
    assert sink.items == []  # nothing dead-lettered
    assert set(rx.ids()) == {a.alert_id for a in alerts}
    assert max(r["ops"].attempts for r in results) > 3  # the probes did fail before it came back
