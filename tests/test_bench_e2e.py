"""The pure parts of `sightline bench e2e` (no broker, cameras or model)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from alerts.settings import RulesSettings
from sightline.bench import e2e_stats as stats
from sightline.bench.e2e import E2EOptions, summarize
from sightline.bench.e2e_chain import camera_rules

MS = 1_000_000


def test_plan_puts_70_and_150_percent_of_capacity_on_cameras_of_one_rate() -> None:
    plan = stats.plan_cameras(44.0, native_fps=10.0)
    assert plan.normal == 4  # 30.8 fps needs 4 cameras at the video's 10 fps at most
    assert plan.fps == pytest.approx(7.7)
    assert plan.load_fps(plan.normal) == pytest.approx(30.8)
    assert plan.overload == 9  # 66 / 7.7 = 8.6 -> the nearest count
    assert plan.load_fps(plan.overload) / 44.0 == pytest.approx(1.5, abs=0.1)


def test_plan_with_a_given_camera_count_caps_the_rate_at_the_video_s() -> None:
    plan = stats.plan_cameras(100.0, native_fps=10.0, cameras=2)
    assert (plan.normal, plan.fps) == (2, 10.0)  # 70 fps asked, 20 possible: the result says so
    assert plan.overload == 15


def test_overload_adds_only_live_cameras_and_half_the_normal_ones_are_live() -> None:
    cameras = stats.Plan(44.0, 7.7, normal=5, overload=9).cameras("t")
    normal = [c for c in cameras if not c.overload]
    extra = [c for c in cameras if c.overload]
    assert [c.policy for c in normal].count("realtime") == 2
    assert [c.policy for c in normal].count("complete") == 3
    assert len(extra) == 4 and all(c.live and c.policy == "realtime" for c in extra)
    assert len({c.id for c in cameras}) == 9


def test_phases_leave_out_warm_up_ramp_and_catch_up() -> None:
    phases = stats.Phases(normal_ns=100, ramp_ns=200, overload_ns=210, healed_ns=310)
    assert [phases.of(t) for t in (99, 100, 199, 200, 209, 210, 309, 310)] == [
        None, "normal", "normal", None, None, "overload", "overload", None
    ]  # fmt: skip
    assert [phases.half(t) for t in (210, 259, 260, 309)] == [0, 0, 1, 1]
    assert phases.lengths_ns() == {"normal": 100, "overload": 100}


def test_latency_by_phase_splits_policies_and_overload_halves() -> None:
    phases = stats.Phases(0, 1000 * MS, 1000 * MS, 2000 * MS)
    policy = {"live": "realtime", "file": "complete"}
    samples = [stats.Sample("live", t * MS, t * MS + 100 * MS) for t in range(0, 1000, 10)]
    samples += [stats.Sample("file", t * MS, t * MS + 50 * MS) for t in range(0, 1000, 10)]
    samples += [
        stats.Sample("live", t * MS, t * MS + (200 if t < 1500 else 400) * MS) for t in range(1000, 2000, 10)
    ]
    samples.append(stats.Sample("live", 2500 * MS, 2600 * MS))  # after the overload: not counted
    out = stats.latency_by_phase(samples, policy, phases)
    assert out["normal"]["realtime"] == {"n": 100, "p50_ms": 100.0, "p99_ms": 100.0}
    assert out["normal"]["complete"]["p50_ms"] == 50.0
    assert out["normal"]["all"]["n"] == 200
    assert out["overload"]["realtime"]["n"] == 100
    assert out["overload"]["realtime"]["p99_ms_by_half"] == [200.0, 400.0]
    assert out["overload"]["complete"] == {
        "n": 0,
        "p50_ms": None,
        "p99_ms": None,
        "p99_ms_by_half": [None, None],
    }


def test_first_of_keeps_the_first_arrival_of_a_repeated_record() -> None:
    rows = [("a", 1, 10), ("a", 1, 30), ("b", 1, 20)]
    assert stats.first_of(rows, lambda r: (r[0], r[1])) == [("a", 1, 10), ("b", 1, 20)]


def test_skipped_by_policy() -> None:
    policy = {"live": "realtime", "file": "complete"}
    rows = [("live", True), ("live", True), ("live", False), ("file", False)]
    assert stats.skipped_by_policy(rows, policy) == {"realtime": 2, "complete": 0}


def test_cpu_used_per_name_and_restarts_are_not_compared() -> None:
    start = {"worker": ((1,), 10.0), "alerts": ((2,), 5.0)}
    end = {"worker": ((1,), 12.5), "alerts": ((3,), 1.0), "decoder-overload": ((4,), 3.0)}
    assert stats.cpu_used(start, end) == {"worker": 2.5, "alerts": None, "decoder-overload": 3.0}


def test_proc_readers_read_this_process_and_the_machine() -> None:
    own = stats.process_cpu_s(os.getpid())
    assert own is not None and own > 0
    assert stats.process_cpu_s(2**22 + 1) is None  # above pid_max's default: no such process
    assert stats.machine_busy_s() > 0


def test_rules_are_valid_and_declare_no_wait() -> None:
    rules = RulesSettings.model_validate({"version": 1, "cameras": [camera_rules("cam")]})
    cam = rules.cameras[0]
    assert cam.lateness_s == 0 and len(cam.thresholds) == 9
    assert all(t.for_s == 0 and t.metric == "count" for t in cam.thresholds)


def test_summary_takes_the_worst_mode_and_sums_the_counts() -> None:
    def mode(p99: float, lost: int) -> dict:
        table = {"all": {"p50_ms": p99 / 2, "p99_ms": p99},
                 "realtime": {"p50_ms": 1.0, "p99_ms": p99 * 2, "p99_ms_by_half": [p99, None]},
                 "complete": {"p50_ms": None, "p99_ms": None}}  # fmt: skip
        latency = {"normal": table, "overload": table}
        counts = {"skipped": {"realtime": 5, "complete": 0}, "lost": lost, "duplicates": 0, "findings": []}
        return {"capture_to_detections": latency, "capture_to_webhook": latency, "catch_up_s": 3.0, **counts}

    plan = stats.Plan(44.0, 7.7, 4, 9)
    out = summarize(plan, {"a": mode(100.0, 0), "b": mode(300.0, 2)}, E2EOptions(), Path("/tmp/x"))
    assert out["capture_to_webhook_p99_ms"] == 300.0
    assert out["overload_capture_to_webhook_p99_ms"] == 600.0
    assert out["overload_capture_to_webhook_p99_ms_by_half"] == [300.0, None]
    assert (out["cameras"], out["overload_cameras"], out["fps"]) == (4, 9, 7.7)
    assert (out["lost"], out["skipped"], out["duplicates"]) == (2, 10, 0)
