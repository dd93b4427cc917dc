"""A per-endpoint circuit breaker, so a dead receiver costs no timeouts after it trips.

Kept hand-written (about 40 lines) because no maintained library fits asyncio delivery:
- pybreaker (maintained) supports coroutines only through tornado and holds a threading lock
  around every guarded call;
- purgatory (asyncio) lets every concurrent request through while half-open (here: a burst of
  timeouts against a dead endpoint instead of one probe), has no "neutral" outcome (a 429/4xx
  would close it), and reads the wall clock, so its timing cannot be tested without sleeping;
- aiobreaker has had no release since 2021 and also admits every caller while half-open.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class CircuitBreaker:
    """closed -> (N consecutive failures) -> open -> (reset_s) -> half-open: one probe.

    A successful probe closes it; a failed probe opens it again for another reset_s.
    """

    def __init__(self, failures: int, reset_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.failures = failures
        self.reset_s = reset_s
        self.clock = clock
        self.consecutive = 0
        self.opened_at: float | None = None
        self.probing = False

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half-open" if self.clock() - self.opened_at >= self.reset_s else "open"

    def allow(self) -> bool:
        """May a request go out now? In half-open only one probe at a time does."""
        state = self.state
        if state == "closed":
            return True
        if state == "half-open" and not self.probing:
            self.probing = True
            return True
        return False

    def retry_in(self) -> float:
        if self.opened_at is None:
            return 0.0
        return max(0.0, self.reset_s - (self.clock() - self.opened_at))

    def success(self) -> None:
        self.consecutive = 0
        self.opened_at = None
        self.probing = False

    def failure(self) -> None:
        self.consecutive += 1
        if self.probing or self.consecutive >= self.failures:
            self.opened_at = self.clock()
        self.probing = False

    def release(self) -> None:
        """A probe ended without telling us about the endpoint's health (e.g. a 4xx)."""
        self.probing = False
