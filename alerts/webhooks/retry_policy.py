"""When a failed webhook request is tried again, how long we wait first, and when we give up.

| outcome                         | retried | uses an attempt | wait                        | breaker |
| ------------------------------- | ------- | --------------- | --------------------------- | ------- |
| 2xx                             | -       | yes             | -                           | success |
| connection error, timeout, 408  | yes     | yes             | backoff                     | failure |
| 5xx                             | yes     | yes             | Retry-After, else backoff   | failure |
| 425                             | yes     | yes             | Retry-After, else backoff   | neutral |
| 429 with Retry-After            | yes     | no (*)          | Retry-After, >= backoff_initial_s | neutral |
| 429 without Retry-After         | yes     | yes             | backoff                     | neutral |
| other 3xx/4xx                   | no      | yes             | -                           | neutral |
| breaker open (no request sent)  | yes     | no              | until the breaker's probe   | -       |
| failed breaker probe            | yes     | no              | until the next probe        | failure |

(*) its waits add up against `max_retry_after_total_s` instead. Every wait also stops at
`max_age_s` after the first try. A failed probe tests the endpoint for every alert waiting on it,
so it costs the alert that happened to carry it no attempt: otherwise an outage longer than
about `max_attempts` x `breaker_reset_s` dead-letters whichever alerts drew the probes, while
the others wait it out. tenacity runs the loop; this module only supplies its `wait`,
`stop`, `after` and `before_sleep` from one delivery's `Budget`.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type

from alerts.settings import WebhookSettings

MAX_RETRY_AFTER_S = 300.0
Kind = Literal["failure", "throttled", "circuit_open", "probe"]


class Retry(Exception):
    """A try that may be repeated; `kind` says what it costs (see the table above)."""

    def __init__(self, reason: str, kind: Kind = "failure", wait_s: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind
        self.wait_s = wait_s


class Fatal(Exception):
    """A reply that retrying cannot fix (a 4xx other than 408/425/429, a 3xx)."""


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


def http_error(code: int, retry_after: str | None, text: str) -> tuple[Retry | Fatal, bool]:
    """The error for a non-2xx reply, and whether it counts as a failure for the breaker."""
    wait = retry_after_seconds(retry_after)
    if code == 429:
        if wait is not None:
            return Retry("http 429", "throttled", wait), False
        return Retry("http 429"), False
    if code == 408:
        return Retry("http 408"), True
    if code == 425:
        return Retry("http 425", wait_s=wait), False
    if code >= 500:
        return Retry(f"http {code}", wait_s=wait), True
    return Fatal(f"http {code}: {text[:200]}"), False


@dataclass
class Budget:
    """What one alert's delivery has spent so far, against its endpoint's limits."""

    settings: WebhookSettings
    rng: random.Random
    breaker_retry_in: Callable[[], float]
    clock: Callable[[], float] = time.monotonic
    requests: int = 0  # HTTP requests sent
    counted: int = 0  # of those, the ones that use up `max_attempts`
    throttled_s: float = 0.0  # time spent honouring 429 Retry-After
    last_reason: str = ""
    gave_up: str = ""

    def __post_init__(self) -> None:
        self.deadline = self.clock() + self.settings.max_age_s

    def retrying(self) -> AsyncRetrying:
        return AsyncRetrying(
            retry=retry_if_exception_type(Retry),
            after=self._after,
            wait=self._wait,
            stop=self._stop,
            before_sleep=self._before_sleep,
            reraise=True,
        )

    def backoff(self, attempt: int) -> float:
        """Exponential backoff; `jitter` of it is randomised so retries of many alerts spread.

        Hand-written because tenacity's jittered waits add a fixed or full random amount, while
        the config promises a random *fraction* of each step.
        """
        s = self.settings
        base = min(s.backoff_max_s, s.backoff_initial_s * s.backoff_multiplier ** (attempt - 1))
        return base * (1 - s.jitter) + self.rng.uniform(0, base * s.jitter)

    def _after(self, state: RetryCallState) -> None:
        exc = _retry(state)
        if exc.kind == "circuit_open":
            return
        self.last_reason = exc.reason  # a failed probe's too: the dead letter says why it was down
        if exc.kind == "failure":
            self.counted += 1

    def _wait(self, state: RetryCallState) -> float:
        exc = _retry(state)
        if exc.kind in ("circuit_open", "probe"):
            return max(self.breaker_retry_in(), 0.05) + self.rng.uniform(0, 0.05)
        if exc.kind == "throttled":
            # Floored so a receiver answering "Retry-After: 0" forever is not hammered in a hot loop.
            return max(exc.wait_s or 0.0, self.settings.backoff_initial_s)
        if exc.wait_s is not None:
            return exc.wait_s
        return self.backoff(max(self.counted, 1))

    def _stop(self, state: RetryCallState) -> bool:
        exc, wait, s = _retry(state), state.upcoming_sleep, self.settings
        now = self.clock()
        if exc.kind in ("circuit_open", "probe"):
            if now >= self.deadline:
                self.gave_up = f"circuit open for over {s.max_age_s:g}s; last: {self.last_reason}"
            return bool(self.gave_up)
        tried = f"after {self.requests} attempts: {exc.reason}"
        if exc.kind == "failure" and self.counted >= s.max_attempts:
            self.gave_up = f"gave up {tried}"
        elif exc.kind == "throttled" and self.throttled_s + wait > s.max_retry_after_total_s:
            self.gave_up = (
                f"Retry-After waits would pass max_retry_after_total_s={s.max_retry_after_total_s:g}s {tried}"
            )
        elif now + wait >= self.deadline:
            self.gave_up = f"gave up {tried} (max_age_s={s.max_age_s:g}s)"
        return bool(self.gave_up)

    def _before_sleep(self, state: RetryCallState) -> None:
        if _retry(state).kind == "throttled":
            self.throttled_s += state.upcoming_sleep


def _retry(state: RetryCallState) -> Retry:
    exc = state.outcome.exception() if state.outcome else None
    assert isinstance(exc, Retry), exc  # tenacity only retries `Retry`
    return exc
