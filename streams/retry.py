"""Retry-until-back for infrastructure calls (Kafka admin/metadata, Redis), sync and async.

tenacity does the waiting (exponential backoff with full jitter); this module only ties it to
`Health` (degraded while retrying, ok again on success) and to a stop event, so a SIGTERM during
an outage still stops the process promptly. Errors that are not infrastructure errors (a bad
record, a bug) are never retried here: callers pass the exception types that mean "try again".
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    wait_random_exponential,
)

from streams.health import Health

T = TypeVar("T")


def _options(
    health: Health,
    dependency: str,
    retry_on: tuple[type[BaseException], ...],
    stop: threading.Event | None,
    max_delay_s: float,
) -> dict:
    def stop_when_asked(_state: RetryCallState) -> bool:
        return stop is not None and stop.is_set()

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        health.degraded(dependency, f"{type(exc).__name__}: {exc}")

    return {
        "retry": retry_if_exception_type(retry_on),
        "wait": wait_random_exponential(multiplier=0.2, max=max_delay_s),
        "stop": stop_when_asked,
        "before_sleep": before_sleep,
        "reraise": True,
    }


def call_with_retry(
    fn: Callable[[], T],
    *,
    health: Health,
    dependency: str,
    retry_on: tuple[type[BaseException], ...],
    stop: threading.Event | None = None,
    max_delay_s: float = 5.0,
) -> T:
    """`fn()`, retried while it raises one of `retry_on`; re-raises the last error once `stop` is set."""
    for attempt in Retrying(**_options(health, dependency, retry_on, stop, max_delay_s)):
        with attempt:
            result = fn()
    health.ok(dependency)
    return result


async def acall_with_retry(
    fn: Callable[[], Awaitable[T]],
    *,
    health: Health,
    dependency: str,
    retry_on: tuple[type[BaseException], ...],
    stop: threading.Event | None = None,
    max_delay_s: float = 5.0,
) -> T:
    """The asyncio twin of `call_with_retry`."""
    async for attempt in AsyncRetrying(**_options(health, dependency, retry_on, stop, max_delay_s)):
        with attempt:
            result = await fn()
    health.ok(dependency)
    return result
