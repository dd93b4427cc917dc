"""Which frames a worker that fell behind skips (fast tier: no broker, no model)."""

from __future__ import annotations

from decoders.settings import CameraSettings
from inference.freshness import FreshnessPolicy
from schemas.frame import FrameMeta

NOW = 1_800_000_000_000_000_000
MS = 1_000_000


def policy(unknown: str = "complete") -> FreshnessPolicy:
    cameras = [
        CameraSettings(id="live", url="rtsp://10.0.0.1/a"),  # live source: realtime by default
        CameraSettings(id="file", url="/videos/dock.mp4"),  # file: complete by default
        CameraSettings(id="strict", url="rtsp://10.0.0.1/b", max_age_ms=200),
        CameraSettings(id="audit", url="rtsp://10.0.0.1/c", freshness="complete"),
        CameraSettings(id="replay", url="/videos/dock.mp4", freshness="realtime"),
    ]
    return FreshnessPolicy(cameras, unknown=unknown, default_max_age_ms=800)  # type: ignore[arg-type]


def frame(camera: str, age_ms: float) -> FrameMeta:
    return FrameMeta(camera, 1, NOW - int(age_ms * MS), 64, 48)


def test_live_sources_are_realtime_and_files_complete_unless_configured() -> None:
    p = policy()
    assert p.check(frame("live", 700), NOW) is None
    skipped = p.check(frame("live", 900), NOW)
    assert skipped is not None and skipped.reason == "stale"
    assert skipped.age_ms == 900 and skipped.max_age_ms == 800
    assert p.check(frame("file", 60_000), NOW) is None, "a file's backlog is worked through"
    assert p.check(frame("strict", 300), NOW) is not None, "a camera's own max age"
    assert p.check(frame("audit", 60_000), NOW) is None, "a live camera set to complete"
    assert p.check(frame("replay", 900), NOW) is not None, "a file set to realtime"


def test_unknown_cameras_follow_the_setting() -> None:
    assert policy("complete").check(frame("other", 60_000), NOW) is None
    assert policy("realtime").check(frame("other", 900), NOW) is not None


def test_the_wait_still_ahead_counts_but_never_more_than_half_the_max_age() -> None:
    p = policy()
    assert p.check(frame("live", 500), NOW, lead_ns=200 * MS) is None
    assert p.check(frame("live", 500), NOW, lead_ns=350 * MS) is not None, "out at 850 ms: too old"
    # A model slower than the max age: the freshest frames still run.
    assert p.check(frame("live", 300), NOW, lead_ns=5_000 * MS) is None
    assert p.check(frame("live", 450), NOW, lead_ns=5_000 * MS) is not None
