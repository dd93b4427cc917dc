"""What an alert's evidence shows (key frame, highlight, clip span) and how long the store keeps it."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from schemas.alert import AlertRecord, TimeWindow, alert_id
from sightline.evidence.plan import NS, plan_for
from sightline.evidence.settings import EvidenceSettings
from sightline.evidence.store import LocalDirStore, sweep

T0 = 1_800_000_000 * NS


def _alert(type_: str, start_s: float, end_s: float, capture_s: float, evidence: dict) -> AlertRecord:
    return AlertRecord(
        alert_id=alert_id(type_, start_s), type=type_, severity="warning", camera_id="cam", rule="r",
        window=TimeWindow(start_ns=T0 + int(start_s * NS), end_ns=T0 + int(end_s * NS)),
        capture_ns=T0 + int(capture_s * NS), created_ns=T0, summary="s", evidence=evidence,
    )  # fmt: skip


def test_each_alert_names_its_key_frame_and_object() -> None:
    settings = EvidenceSettings()
    gap = _alert("scan_gap", 10, 20, 25, {"kind": "scan_gap", "seq": 150, "counted_ns": T0 + 15 * NS,
                                        "track_id": 17, "box": [1, 2, 3, 4]})  # fmt: skip
    plan = plan_for(gap, settings)
    assert (plan.key_seq, plan.key_ns) == (150, T0 + 15 * NS)
    assert plan.highlight.track_ids == {17} and plan.highlight.boxes == ([1.0, 2.0, 3.0, 4.0],)
    assert plan.clip_highlight.boxes == (), "a box belongs to one frame, not to the clip"
    assert (plan.clip_start_ns, plan.clip_end_ns) == (T0 + 5 * NS, T0 + 25 * NS)

    crowd = plan_for(_alert("threshold", 0, 4, 4, {"kind": "count", "classes": ["person"]}), settings)
    assert crowd.key_seq is None and crowd.key_ns == T0 + 4 * NS and crowd.highlight.classes == {"person"}
    spike = plan_for(_alert("spike", 0, 5, 6, {"kind": "spike", "class_name": "car"}), settings)
    assert spike.highlight.classes == {"car"} and spike.clip_end_ns == T0 + 11 * NS


def test_a_long_window_is_cut_around_the_key_frame() -> None:
    settings = EvidenceSettings(max_clip_s=20)
    session = plan_for(_alert("tally", 0, 300, 100, {"kind": "session"}), settings)
    assert session.clip_end_ns - session.clip_start_ns == 20 * NS
    assert (session.clip_start_ns, session.clip_end_ns) == (T0 + 90 * NS, T0 + 110 * NS)
    late = plan_for(_alert("tally", 0, 300, 304, {"kind": "window"}), settings)
    assert late.clip_end_ns == T0 + 309 * NS, "the cut keeps the post-roll after the key frame"


def test_retention_deletes_old_evidence_and_keeps_the_rest(tmp_path: Path) -> None:
    store = LocalDirStore(tmp_path)
    for name in ("old", "new"):
        store.put(f"{name}/snapshot.jpg", b"jpeg")
        store.put(f"{name}/evidence.json", b"{}")
    month_ago = time.time() - 31 * 86400
    for item in (tmp_path / "old").iterdir():
        os.utime(item, (month_ago, month_ago))
    assert sweep(store, 30 * 86400) == 2
    assert not (tmp_path / "old").exists() and store.get("new/snapshot.jpg") == b"jpeg"
    with pytest.raises(ValueError, match="invalid evidence key"):
        store.get("../../etc/passwd")


def test_camera_health_alerts_show_the_measured_frame_or_the_last_before_the_silence() -> None:
    settings = EvidenceSettings()
    covered = _alert("camera_health", 0, 10, 10, {"kind": "covered", "seq": 412, "brightness": 3.0})
    plan = plan_for(covered, settings)
    assert plan.key_seq == 412, "the frame whose statistics said covered"
    # offline: the alert is stamped when the silence was noticed; its key frame is the last one
    # captured before that, and the clip ends with the silence.
    offline = plan_for(_alert("camera_health", 0, 30, 30, {"kind": "offline", "silent_s": 30.0}), settings)
    assert offline.key_seq is None and offline.key_ns == T0 + 30 * NS
    assert offline.clip_start_ns < T0 + 30 * NS <= offline.clip_end_ns
