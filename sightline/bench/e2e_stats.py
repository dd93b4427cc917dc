"""The pure parts of `sightline bench e2e`: the camera plan, the phase a capture belongs to,
latency percentiles per phase and freshness policy, and CPU seconds read from /proc.

Kept apart from the run itself so they are tested without a broker, cameras or a model.
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

NORMAL_LOAD, OVERLOAD = 0.7, 1.5  # of the worker's measured capacity
POLICIES = ("realtime", "complete")
_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
T = TypeVar("T")


@dataclass(frozen=True)
class Camera:
    id: str
    live: bool  # an RTSP camera (freshness "realtime"); otherwise a file replayed at real time ("complete")
    overload: bool  # added for the overload phase only

    @property
    def policy(self) -> str:
        return "realtime" if self.live else "complete"


@dataclass(frozen=True)
class Plan:
    """Every camera runs at the same `fps`; `normal` cameras make ~70% of capacity, `overload`
    cameras (the normal ones plus extras) ~150%."""

    capacity_fps: float
    fps: float
    normal: int
    overload: int

    def cameras(self, prefix: str) -> list[Camera]:
        """The normal group is half live (rounded down), half files; every extra camera of the
        overload is live, so the complete cameras' share stays the normal phase's (under
        capacity) and the overload is what a freshness policy can shed."""
        live = self.normal // 2
        normal = [Camera(f"{prefix}-rtsp{i}", True, False) for i in range(live)]
        normal += [Camera(f"{prefix}-file{i}", False, False) for i in range(self.normal - live)]
        extra = [Camera(f"{prefix}-rtsp{live + i}", True, True) for i in range(self.overload - self.normal)]
        return normal + extra

    def load_fps(self, cameras: int) -> float:
        return round(cameras * self.fps, 1)


def plan_cameras(capacity_fps: float, native_fps: float, cameras: int | None = None) -> Plan:
    """Camera count x per-camera fps for 70% and 150% of `capacity_fps`.

    `cameras` (default: as few as the video's native rate allows, at least 2) share 70% of
    capacity, each at `0.7 x capacity / cameras` fps (at most the native rate: then the load is
    below 70%, and the result says so); the overload adds cameras at that same fps until the
    total is the nearest to 150% (at least one more camera)."""
    normal = cameras or max(2, math.ceil(NORMAL_LOAD * capacity_fps / native_fps))
    fps = min(native_fps, NORMAL_LOAD * capacity_fps / normal)
    overload = max(normal + 1, round(OVERLOAD * capacity_fps / fps))
    return Plan(round(capacity_fps, 1), round(fps, 2), normal, overload)


@dataclass(frozen=True)
class Phases:
    """Wall-clock bounds (ns) of one run: normal load from `normal_ns` to `ramp_ns`, when the
    overload's cameras start; the overload from `overload_ns`, when they all deliver, until
    `healed_ns`. Captures in the warm-up before, the ramp between and the catch-up after belong
    to no phase."""

    normal_ns: int
    ramp_ns: int
    overload_ns: int
    healed_ns: int

    def of(self, capture_ns: int) -> str | None:
        if self.normal_ns <= capture_ns < self.ramp_ns:
            return "normal"
        if self.overload_ns <= capture_ns < self.healed_ns:
            return "overload"
        return None

    def lengths_ns(self) -> dict[str, int]:
        return {"normal": self.ramp_ns - self.normal_ns, "overload": self.healed_ns - self.overload_ns}

    def half(self, capture_ns: int) -> int:
        """0 or 1: which half of the overload phase a capture falls in."""
        return int(capture_ns >= (self.overload_ns + self.healed_ns) // 2)


@dataclass(frozen=True)
class Sample:
    """One latency: a frame's (or an alert's) capture time and when it arrived downstream."""

    camera: str
    capture_ns: int
    at_ns: int


def first_of(items: Iterable[T], key: Any) -> list[T]:
    """The first item per `key(item)`: a record or webhook that came again adds no latency."""
    seen: dict[Hashable, T] = {}
    for item in items:
        seen.setdefault(key(item), item)
    return list(seen.values())


def percentiles(values_ms: Sequence[float]) -> dict[str, Any]:
    if not values_ms:
        return {"n": 0, "p50_ms": None, "p99_ms": None}
    p50, p99 = np.percentile(values_ms, [50, 99])
    return {"n": len(values_ms), "p50_ms": round(float(p50), 1), "p99_ms": round(float(p99), 1)}


def latency_by_phase(samples: Iterable[Sample], policy: Mapping[str, str], phases: Phases) -> dict[str, Any]:
    """Per phase, all cameras and per freshness policy: n, p50 and p99 (ms). The overload phase
    adds each policy's p99 in its first and second half: a queue that grows with the run's
    length shows as a second half much slower than the first."""
    groups: dict[tuple[str, str], list[float]] = defaultdict(list)
    halves: dict[tuple[str, int], list[float]] = defaultdict(list)
    for s in samples:
        phase = phases.of(s.capture_ns)
        if phase is None:
            continue
        ms = (s.at_ns - s.capture_ns) / 1e6
        groups[(phase, "all")].append(ms)
        groups[(phase, policy[s.camera])].append(ms)
        if phase == "overload":
            halves[(policy[s.camera], phases.half(s.capture_ns))].append(ms)
    out: dict[str, Any] = {
        phase: {kind: percentiles(groups[(phase, kind)]) for kind in ("all", *POLICIES)}
        for phase in ("normal", "overload")
    }
    for kind in POLICIES:
        out["overload"][kind]["p99_ms_by_half"] = [percentiles(halves[(kind, h)])["p99_ms"] for h in (0, 1)]
    return out


def skipped_by_policy(records: Iterable[tuple[str, bool]], policy: Mapping[str, str]) -> dict[str, int]:
    """(camera, skipped) per frame -> frames skipped per freshness policy."""
    counts = dict.fromkeys(POLICIES, 0)
    for camera, skipped in records:
        counts[policy[camera]] += skipped
    return counts


# -- CPU ---------------------------------------------------------------------------------
Snapshot = dict[str, tuple[tuple[int, ...], float]]  # name -> (the pids or tids read, CPU seconds)


def process_cpu_s(pid: int, task: int | None = None) -> float | None:
    """utime + stime of a process (or of one of its threads), None once it is gone."""
    path = f"/proc/{pid}/stat" if task is None else f"/proc/{pid}/task/{task}/stat"
    try:
        with open(path) as stat:
            line = stat.read()
    except OSError:
        return None
    fields = line[line.rindex(")") + 2 :].split()  # the name in parentheses may hold spaces
    return (int(fields[11]) + int(fields[12])) / _TICKS_PER_S


def machine_busy_s() -> float:
    """CPU seconds all cores spent on anything but idle and iowait since boot (/proc/stat)."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    return (sum(values[:8]) - values[3] - values[4]) / _TICKS_PER_S


def cpu_used(start: Snapshot, end: Snapshot) -> dict[str, float | None]:
    """CPU seconds each name used between two snapshots. A name first seen in `end` started in
    between (all its CPU counts); one whose pids changed was restarted (None: not comparable)."""
    used: dict[str, float | None] = {}
    for name, (ids, cpu) in end.items():
        before = start.get(name)
        if before is None:
            used[name] = round(cpu, 2)
        else:
            used[name] = round(cpu - before[1], 2) if before[0] == ids else None
    return used
