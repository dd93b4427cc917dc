"""Health of a long-running process: its dependencies (Kafka, Redis, ...) and its own loops.

Every stage rides out outages of what it depends on: it retries, says it is degraded and
resumes by itself. This is the one place that says so: a log line once per state change (never
per retry), a Prometheus gauge per dependency, and a snapshot that `/readyz` endpoints serve.

Liveness is the other half: a process can serve HTTP from a background thread while its main
loop is hung, so each loop beats (`Health.loop(...).beat()`) and `/healthz` fails once one has
been silent too long. A loop that is retrying a dependency is not hung: every `degraded`/`ok`
report made from a loop's own thread counts as a beat, and a wait wrapped in `waiting_on` is
excused for as long as that dependency is down.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
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


class Heartbeat:
    """One loop's beat: `beat()` is a single float store, cheap enough for once per frame."""

    __slots__ = ("_health", "last", "name", "thread", "waiting")

    def __init__(self, health: Health, name: str) -> None:
        self._health = health
        self.name = name
        self.thread = threading.get_ident()
        self.last = time.monotonic()
        self.waiting: str | None = None  # the dependency a `waiting_on` block waits for

    def beat(self) -> None:
        self.last = time.monotonic()

    @contextmanager
    def waiting_on(self, dependency: str) -> Iterator[None]:
        """A wait that only ends when `dependency` is back: excused from beating while it is down."""
        self.waiting = dependency
        try:
            yield
        finally:
            self.waiting = None
            self.last = time.monotonic()

    def close(self) -> None:
        """The loop ended on purpose (a file source finished, shutdown): stop watching it."""
        self._health._forget(self)

    def __enter__(self) -> Heartbeat:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class Health:
    """Thread-safe; one per process component (`decoder`, `inference`, `alerts`, `api`, `drift`)."""

    def __init__(self, component: str) -> None:
        self.component = component
        self._lock = threading.Lock()
        self._deps: dict[str, DependencyState] = {}
        self._loops: list[Heartbeat] = []
        self._by_thread: dict[int, Heartbeat] = {}  # read without the lock: a dict get is atomic

    # -- loops ---------------------------------------------------------------------------
    def loop(self, name: str) -> Heartbeat:
        """Watch the calling thread's loop from now on; it must beat at least every timeout."""
        heartbeat = Heartbeat(self, name)
        with self._lock:
            self._loops.append(heartbeat)
            self._by_thread[heartbeat.thread] = heartbeat
        return heartbeat

    def _forget(self, heartbeat: Heartbeat) -> None:
        with self._lock:
            if heartbeat in self._loops:
                self._loops.remove(heartbeat)
            if self._by_thread.get(heartbeat.thread) is heartbeat:
                del self._by_thread[heartbeat.thread]

    def _beat_calling_thread(self) -> None:
        """A dependency report from a loop's own thread: it is running (retrying), not hung."""
        heartbeat = self._by_thread.get(threading.get_ident())
        if heartbeat is not None:
            heartbeat.last = time.monotonic()

    def liveness(self, timeout_s: float) -> tuple[bool, dict[str, dict[str, object]]]:
        """For `/healthz`: alive unless a watched loop was silent for over `timeout_s`.

        A loop inside `waiting_on(dep)` is excused while `dep` is down, and its silence only
        counts from the moment `dep` came back (draining a backlog after a long outage).
        """
        now, wall = time.monotonic(), time.time()
        loops: dict[str, dict[str, object]] = {}
        alive = True
        with self._lock:
            for heartbeat in self._loops:
                silent = now - heartbeat.last
                waiting = heartbeat.waiting
                dep = self._deps.get(waiting) if waiting is not None else None
                if dep is not None:
                    silent = 0.0 if not dep.up else min(silent, wall - dep.since)
                stuck = silent > timeout_s
                alive = alive and not stuck
                name = heartbeat.name if heartbeat.name not in loops else f"{heartbeat.name}#{len(loops)}"
                loops[name] = {
                    "silent_s": round(silent, 1),
                    "alive": not stuck,
                    **({"waiting_on": waiting} if waiting is not None else {}),
                }
        return alive, loops

    # -- dependencies --------------------------------------------------------------------
    def ok(self, dependency: str) -> None:
        self._beat_calling_thread()
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
        self._beat_calling_thread()
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
