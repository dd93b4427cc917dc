"""Health of a long-running process's dependencies (Kafka, Redis, a camera, ...).

Every stage rides out outages of what it depends on: it retries, says it is degraded and
resumes by itself. This is the one place that says so: a log line once per state change (never
per retry), a Prometheus gauge per dependency, and a snapshot that `/readyz` endpoints serve.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from prometheus_client import Gauge

log = logging.getLogger(__name__)

DEPENDENCY_UP = Gauge(
    "sightline_dependency_up",
    "1 while the process can reach the dependency, 0 while it is retrying it",
    ["component", "dependency"],
)


@dataclass
class DependencyState:
    up: bool = True
    since: float = 0.0  # time.time() of the last change
    reason: str = ""
    failures: int = 0  # failed attempts since it went down


class Health:
    """Thread-safe; one per process component (`decoder`, `inference`, `alerts`, `api`, `drift`)."""

    def __init__(self, component: str) -> None:
        self.component = component
        self._lock = threading.Lock()
        self._deps: dict[str, DependencyState] = {}

    def ok(self, dependency: str) -> None:
        with self._lock:
            state = self._deps.setdefault(dependency, DependencyState(since=time.time()))
            was_down = not state.up
            if was_down:
                down_s = time.time() - state.since
                state.up, state.since, state.reason, state.failures = True, time.time(), "", 0
        DEPENDENCY_UP.labels(self.component, dependency).set(1)
        if was_down:
            log.warning("%s: %s is back after %.1fs", self.component, dependency, down_s)

    def degraded(self, dependency: str, reason: str) -> None:
        with self._lock:
            state = self._deps.setdefault(dependency, DependencyState(since=time.time()))
            went_down = state.up
            state.failures += 1
            if went_down:
                state.up, state.since = False, time.time()
            state.reason = reason[:500]
        DEPENDENCY_UP.labels(self.component, dependency).set(0)
        if went_down:
            log.warning(
                "%s: %s unavailable, retrying until it is back: %s", self.component, dependency, reason
            )

    def is_up(self, dependency: str) -> bool:
        with self._lock:
            state = self._deps.get(dependency)
            return state is None or state.up

    @property
    def ready(self) -> bool:
        with self._lock:
            return all(state.up for state in self._deps.values())

    def snapshot(self) -> dict[str, dict[str, object]]:
        """For `/readyz`: each dependency's state, reason and how long it has been so."""
        now = time.time()
        with self._lock:
            return {
                name: {
                    "up": state.up,
                    "for_s": round(now - state.since, 1),
                    **({} if state.up else {"reason": state.reason, "failures": state.failures}),
                }
                for name, state in sorted(self._deps.items())
            }
