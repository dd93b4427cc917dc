"""The camera_health rule: offline (decoder records, processor ticks), covered, out of focus and
moved, each once per episode after `for_s`; and real frames of the sample video through the
decoder's statistics into the engine."""

from __future__ import annotations

import asyncio
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from alerts.engine import Engine
from alerts.health_ticks import key_partition, ticks
from alerts.runner import RawRecord, RulesRunner
from alerts.settings import RulesSettings
from decoders.health import HealthMonitor
from decoders.settings import HealthSettings
from schemas.alert import AlertRecord
from schemas.camera_health import CameraHealth

T0 = 1_700_000_000_000_000_000
S = 1_000_000_000
HEALTH = {
    "name": "health",
    "offline_s": 30,
    "covered": {"for_s": 5},
    "out_of_focus": {"sharpness_below": 100, "for_s": 10},
    "moved": {"similarity_below": 0.75, "for_s": 10},
}
GOOD = {"brightness": 120.0, "contrast": 50.0, "sharpness": 1100.0, "similarity": 0.92}


def engine(rule: dict | None = None) -> Engine:
    return Engine(
        RulesSettings(
            cameras=[
                {"camera": "cam", "camera_health": [rule or HEALTH]},
                {"camera": "plain", "thresholds": [{"name": "t", "metric": "count", "value": 1}]},
            ]
        )
    )


def stats(t_s: float, seq: int = 0, **values: float | None) -> CameraHealth:
    return CameraHealth(camera_id="cam", kind="stats", at_ns=T0 + int(t_s * S), seq=seq, **{**GOOD, **values})


def tick(t_s: float, camera: str = "cam") -> CameraHealth:
    return CameraHealth(camera_id=camera, kind="tick", at_ns=T0 + int(t_s * S))


def run(eng: Engine, records: list[CameraHealth]) -> list[AlertRecord]:
    alerts: list[AlertRecord] = []
    for record in records:
        alerts += eng.on_health(record)
    return alerts


def test_covered_raises_once_per_episode_after_for_s() -> None:
    eng = engine()
    black = {"brightness": 3.0, "contrast": 0.5, "sharpness": 0.0, "similarity": 0.0}
    records = [stats(t, t, **black) for t in range(0, 12)]
    alerts = run(eng, records)
    assert [(a.type, a.evidence["kind"]) for a in alerts] == [("camera_health", "covered")]
    alert = alerts[0]
    assert alert.window.start_ns == T0 and alert.capture_ns == T0 + 5 * S, "raised when for_s held"
    assert alert.evidence["seq"] == 5 and alert.severity == "warning"
    assert "covered" in alert.summary
    # Uncovered, then covered again: a new episode, a new alert with another id.
    again = run(eng, [stats(12, 12)] + [stats(t, t, **black) for t in range(13, 20)])
    assert len(again) == 1 and again[0].alert_id != alert.alert_id
    # The same records again (a replay into a fresh engine) give the same ids.
    assert [a.alert_id for a in run(engine(), records)] == [alert.alert_id]


def test_washed_out_is_covered_too_and_hides_focus_and_moved() -> None:
    white = {"brightness": 250.0, "contrast": 20.0, "sharpness": 5.0, "similarity": 0.1}
    alerts = run(engine(), [stats(t, t, **white) for t in range(0, 20)])
    assert [a.evidence["kind"] for a in alerts] == ["covered"]


def test_out_of_focus_and_moved_need_their_for_s() -> None:
    eng = engine()
    soft = run(eng, [stats(t, t, sharpness=40.0) for t in range(0, 9)])
    assert soft == [], "9 s of blur is under for_s"
    assert run(eng, [stats(9.5, 10)]) == [], "sharp again: the episode ends"
    soft = run(eng, [stats(t, t, sharpness=40.0) for t in range(10, 25)])
    assert [a.evidence["kind"] for a in soft] == ["out_of_focus"]
    assert soft[0].window.start_ns == T0 + 10 * S
    moved = run(eng, [stats(t, t, similarity=0.5) for t in range(30, 45)])
    assert [a.evidence["kind"] for a in moved] == ["moved"]
    assert moved[0].evidence["similarity"] == 0.5


def test_no_reference_means_moved_is_not_checked() -> None:
    assert run(engine(), [stats(t, t, similarity=None) for t in range(0, 60)]) == []


def test_offline_is_noticed_by_ticks_when_the_decoder_is_gone() -> None:
    eng = engine()
    assert run(eng, [stats(0), stats(1, 1)]) == []
    assert run(eng, [tick(20), tick(30)]) == [], "29 s of silence"
    alerts = run(eng, [tick(31), tick(36), tick(41)])
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert.evidence["kind"] == "offline" and alert.severity == "critical"
    assert alert.evidence["noticed_by"] == "tick" and alert.evidence["last_frame_ns"] == T0 + S
    assert alert.window.start_ns == T0 + S and alert.capture_ns == T0 + 31 * S
    # Frames again: the episode ends; silent again: a new alert.
    assert run(eng, [stats(50, 2)]) == []
    assert len(run(eng, [tick(81)])) == 1


def test_offline_from_the_decoders_own_measure() -> None:
    eng = engine()
    run(eng, [stats(0)])
    offline = CameraHealth(
        camera_id="cam", kind="offline", at_ns=T0 + 2 * S, offline_s=31.0, reason="stalled"
    )
    alerts = run(eng, [offline])
    assert len(alerts) == 1 and alerts[0].evidence["reason"] == "stalled"
    assert "(stalled)" in alerts[0].summary


def test_a_camera_never_seen_is_offline_after_offline_s_of_ticks() -> None:
    alerts = run(engine(), [tick(0), tick(10), tick(31)])
    assert len(alerts) == 1 and alerts[0].evidence["last_frame_ns"] is None


def test_health_records_leave_the_detections_clock_alone_and_survive_a_checkpoint() -> None:
    eng = engine()
    run(eng, [stats(0), tick(20)])
    camera = eng.cameras["cam"]
    assert camera.ctx.max_capture_ns == -1, "ticks must not make detections late"
    restored = engine()
    restored.camera("cam").restore(camera.snapshot())
    assert len(run(restored, [tick(31)])) == 1, "the silence measured before the checkpoint counts"


def test_ticks_go_to_the_cameras_partition_only_for_offline_checks() -> None:
    rules = RulesSettings(
        cameras=[
            {"camera": "cam", "camera_health": [HEALTH]},
            {"camera": "quiet", "camera_health": [{**HEALTH, "offline_s": None}]},
            {"camera": "other", "thresholds": [{"name": "t", "metric": "count", "value": 1}]},
        ]
    )
    out = ticks(rules.cameras, 6, T0)
    assert [(k, p) for k, _, p in out] == [(b"cam", key_partition(b"cam", 6))]
    assert CameraHealth.decode(out[0][1]).kind == "tick"
    # librdkafka's consistent_random partitioner: CRC32 of the key (decoders/resume.py agrees).
    from decoders.resume import key_partition as decoder_partition

    assert all(key_partition(k, 6) == decoder_partition(k, 6) for k in (b"cam", b"lane-1", b"x"))


def test_the_runner_routes_health_records_and_rejects_broken_ones() -> None:
    eng = engine()
    loaded: list[str] = []

    async def load(camera: str, version: int) -> None:
        loaded.append(camera)

    runner = RulesRunner(eng, "det", "pos", load, health_topic="health")
    black = {"brightness": 3.0, "contrast": 0.5}
    batch = [RawRecord("health", 0, i, stats(i, i, **black).encode()) for i in range(7)]
    batch.append(RawRecord("health", 0, 7, b'{"camera_id": "cam"}'))
    batch.append(RawRecord("health", 0, 8, tick(1, camera="no-rules").encode()))
    batch.append(RawRecord("health", 0, 9, tick(1, camera="plain").encode()))
    result = asyncio.run(runner.process(batch))
    assert [a.evidence["kind"] for a in result.alerts] == ["covered"]
    assert [r.offset for r, _ in result.rejected] == [7]
    assert result.touched == {"cam"} and set(loaded) == {"cam"}, "no health rules: not loaded"


@pytest.fixture(scope="module")
def sample(vtest_path: Path) -> list[av.VideoFrame]:
    out = []
    with av.open(str(vtest_path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i % 25 == 0:
                out.append(frame)
            if len(out) == 30:
                break
    return out


def _edited(frame: av.VideoFrame, how: str) -> av.VideoFrame:
    gray = frame.to_ndarray(format="gray")
    h, w = gray.shape
    if how == "black":
        gray = np.zeros_like(gray)
    elif how == "blur":
        gray = cv2.GaussianBlur(gray, (0, 0), 6)
    elif how == "shift":
        gray = cv2.warpAffine(
            gray, np.float32([[1, 0, 60], [0, 1, 30]]), (w, h), borderMode=cv2.BORDER_REFLECT
        )
    rgb = cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB)
    return av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")


@pytest.mark.parametrize(
    ("how", "kind"), [("black", "covered"), ("blur", "out_of_focus"), ("shift", "moved")]
)
def test_real_frames_through_the_decoder_statistics_raise_the_right_alert(
    sample: list[av.VideoFrame], how: str, kind: str
) -> None:
    """10 s of the scene as it is, then 20 s of the broken picture, one measurement a second."""
    monitor = HealthMonitor("cam", HealthSettings(every_s=1.0))
    eng = engine()
    alerts: list[AlertRecord] = []
    for i, frame in enumerate(sample):
        shown = frame if i < 10 else _edited(frame, how)
        measured = monitor.inspect(shown, float(i))
        assert measured is not None
        alerts += eng.on_health(monitor.stats_record(measured, i, T0 + i * S))
    assert [a.evidence["kind"] for a in alerts] == [kind]


def test_test_rules_replays_camera_health_records(tmp_path: Path) -> None:
    """`sightline alerts test-rules --health FILE`: the same alerts as the live processors."""
    import json

    import yaml
    from typer.testing import CliRunner

    from sightline.cli import app

    black = {"brightness": 3.0, "contrast": 0.5}
    records = [stats(t, t, **black) for t in range(0, 12)] + [tick(45)]
    health = tmp_path / "health.jsonl"
    health.write_text("".join(r.encode().decode() + "\n" for r in records))
    rules = tmp_path / "rules.yaml"
    document = {"version": 1, "cameras": [{"camera": "cam", "camera_health": [HEALTH]}]}
    rules.write_text(yaml.safe_dump(document))
    detections = tmp_path / "detections.jsonl"
    detections.write_text("")
    args = ["alerts", "test-rules", "--from", str(detections), "--rules", str(rules), "--health", str(health)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    alerts = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    assert [a["evidence"]["kind"] for a in alerts] == ["covered", "offline"]
    assert [a["alert_id"] for a in alerts] == [a.alert_id for a in run(engine(), records)]
