"""The pure rule engine: counting, windows, sessions, defects, scan gaps, anomalies, thresholds."""

from __future__ import annotations

import json

import numpy as np

from alerts.engine import Engine
from alerts.geometry import Line, Polygon, anchor_points
from alerts.pos import PosEvent
from alerts.settings import RulesSettings
from alerts.synthetic import Walker, box_at, record, scene
from schemas.alert import AlertRecord
from schemas.detections import Skipped

T0 = 1_700_000_000_000_000_000
S = 1_000_000_000


def engine(camera: dict) -> Engine:
    return Engine(RulesSettings(cameras=[{"camera": "cam", **camera}]))


def run(eng: Engine, records, flush: bool = True) -> list[AlertRecord]:
    alerts = []
    for rec in records:
        alerts += eng.on_record(rec)
    if flush:
        alerts += eng.flush()
    return alerts


LINE_LANE = {
    "name": "lane-1",
    "line": {"start": [0, 288], "end": [768, 288], "band_px": 6},
    "classes": ["person"],
    "window_s": 10,
}


def test_geometry_is_vectorised_and_signed() -> None:
    line = Line((0, 0), (10, 0))
    pts = np.array([[5.0, 3.0], [5.0, -3.0], [5.0, 0.5], [20.0, 3.0]])
    assert line.sides(pts, 1.0).tolist() == [1, -1, 0, 1]
    assert line.along(pts).tolist() == [0.5, 0.5, 0.5, 2.0]
    square = Polygon([(0, 0), (10, 0), (10, 10), (0, 10)])
    assert square.contains(np.array([[5.0, 5.0], [15.0, 5.0], [-1.0, 5.0], [9.9, 0.1]])).tolist() == [
        True,
        False,
        False,
        True,
    ]
    assert anchor_points(np.array([[0.0, 0.0, 10.0, 20.0]]), "bottom_center").tolist() == [[5.0, 20.0]]


def test_crossing_tracks_are_tallied_once_per_window() -> None:
    walkers = [
        Walker(1, "person", (100, 150), (100, 450), 0, 30),  # crosses at ~frame 14
        Walker(2, "person", (300, 450), (300, 150), 5, 30),  # crosses the other way
        Walker(3, "person", (500, 150), (500, 250), 0, 30),  # never reaches the line
        Walker(4, "car", (600, 150), (600, 450), 0, 30),  # not a counted class
        Walker(5, "person", (200, 150), (200, 450), 120, 30),  # crosses in the second window
    ]
    alerts = run(engine({"lanes": [LINE_LANE]}), scene("cam", walkers, 200))
    tallies = [a for a in alerts if a.type == "tally"]
    assert [(a.window.start_ns - T0 // (10 * S) * (10 * S), a.evidence["counts"]) for a in tallies] == [
        (0, {"person": 2}),
        (10 * S, {"person": 1}),
    ]
    # Same input, same ids: deterministic.
    again = run(engine({"lanes": [LINE_LANE]}), scene("cam", walkers, 200))
    assert [a.alert_id for a in again] == [a.alert_id for a in alerts]


def test_direction_filter_counts_only_one_way() -> None:
    lane = {**LINE_LANE, "line": {**LINE_LANE["line"], "direction": "in"}}
    walkers = [
        Walker(1, "person", (100, 150), (100, 450), 0, 30),
        Walker(2, "person", (300, 450), (300, 150), 0, 30),
    ]
    alerts = run(engine({"lanes": [lane]}), scene("cam", walkers, 40))
    # start->end points right, so "in" (right-hand side) is downwards on the image.
    assert [a.evidence["counts"] for a in alerts if a.type == "tally"] == [{"person": 1}]


def test_jitter_on_the_line_counts_once() -> None:
    ys = [280, 283, 290, 286, 296, 282, 270, 300, 275, 310, 279, 320, 330]
    recs = [
        record("cam", i, T0 + i * S // 10, [(box_at(100, y), 0.9, "person", 7)]) for i, y in enumerate(ys)
    ]
    alerts = run(engine({"lanes": [LINE_LANE]}), recs)
    assert [a.evidence["counts"] for a in alerts if a.type == "tally"] == [{"person": 1}]
    # Inside the hysteresis band only: never counted.
    small = [
        record("cam", i, T0 + i * S // 10, [(box_at(100, 288 + (-1) ** i * 4), 0.9, "person", 8)])
        for i in range(20)
    ]
    assert run(engine({"lanes": [LINE_LANE]}), small) == []


def test_zone_entries_are_counted_once_per_track() -> None:
    lane = {"name": "zone-a", "zone": [[200, 200], [400, 200], [400, 400], [200, 400]], "window_s": 60}
    walkers = [
        Walker(1, "person", (100, 300), (500, 300), 0, 40),  # passes through
        Walker(2, "person", (300, 300), (310, 310), 0, 40),  # stays inside
        Walker(3, "person", (100, 100), (150, 100), 0, 40),  # never inside
    ]
    alerts = run(engine({"lanes": [lane]}), scene("cam", walkers, 50))
    assert [a.evidence["counts"] for a in alerts] == [{"person": 2}]


def test_late_record_lands_in_its_window_and_too_late_is_dropped() -> None:
    eng = engine({"lateness_s": 2, "lanes": [LINE_LANE]})
    base = T0 // (10 * S) * (10 * S) + 100 * S  # a window boundary

    def rec(seq: int, t: int, tid: int, y: float):
        return record("cam", seq, t, [(box_at(100 + tid, y), 0.9, "person", tid)])

    alerts = []
    alerts += eng.on_record(rec(0, base + 8 * S, 1, 200))  # track 1 above the line
    alerts += eng.on_record(rec(1, base + 11 * S, 2, 200))  # time moves on into the next window
    alerts += eng.on_record(rec(2, base + 9 * S, 1, 400))  # late: track 1 crossed at t=9s
    alerts += eng.on_record(rec(3, base + 12 * S, 2, 400))  # track 2 crosses at 12s
    # The watermark (12 s - 2 s lateness) reaches 10 s: window [0, 10) is final, with track 1 in it.
    assert [(a.window.start_ns - base, a.evidence["counts"]) for a in alerts] == [(0, {"person": 1})]
    # A crossing 5 s behind the newest record is beyond lateness: counted in totals, not in a window.
    alerts += eng.on_record(rec(5, base + 7 * S, 4, 200))
    alerts += eng.on_record(rec(6, base + 7_500_000_000, 4, 400))
    assert eng.cameras["cam"].lanes["lane-1"].state["totals"] == {"person": 3}
    state = eng.cameras["cam"].lanes["lane-1"].state
    assert state["late_dropped"] == 1
    alerts += eng.flush()
    assert [(a.window.start_ns - base, a.evidence["counts"]) for a in alerts] == [
        (0, {"person": 1}),
        (10 * S, {"person": 1}),
    ]


def test_idle_gap_closes_a_session_with_a_tally_alert() -> None:
    lane = {**LINE_LANE, "emit_windows": False, "session": {"idle_gap_s": 5}}
    walkers = [Walker(i, "person", (100 * i, 150), (100 * i, 450), 3 * i, 20) for i in range(1, 4)]
    walkers.append(Walker(9, "person", (600, 150), (600, 450), 150, 20))  # second session
    alerts = run(engine({"lateness_s": 0, "lanes": [lane]}), scene("cam", walkers, 200), flush=False)
    assert len(alerts) == 1
    assert alerts[0].evidence["kind"] == "session"
    assert alerts[0].evidence["items"] == 3 and alerts[0].evidence["closed_by"] == "idle"


def test_pos_events_open_and_close_sessions_and_scans_silence_scan_gap() -> None:
    lane = {
        **LINE_LANE,
        "emit_windows": False,
        "pos_register": "reg-1",
        "session": {"idle_gap_s": 60, "auto_open": False},
        "scan_gap": {"tolerance_s": 3, "grace_s": 1},
    }
    eng = engine({"lateness_s": 0, "lanes": [lane]})
    walkers = [
        Walker(1, "person", (100, 150), (100, 450), 0, 20),  # crosses ~1.0 s, scanned at 1.5 s
        Walker(2, "person", (300, 150), (300, 450), 30, 20),  # crosses ~4.0 s, never scanned
    ]
    records = list(scene("cam", walkers, 150))
    alerts = eng.on_pos(PosEvent(type="session_open", register="reg-1", at_ns=T0, event_id="s1"))
    for rec in records:
        alerts += eng.on_record(rec)
        if rec.seq == 15:
            scan = PosEvent(type="scan", register="reg-1", at_ns=T0 + 1_500_000_000, event_id="x1")
            alerts += eng.on_pos(scan)
            alerts += eng.on_pos(scan)  # duplicate delivery of the same event: ignored
        if rec.seq == 100:
            alerts += eng.on_pos(PosEvent(type="session_close", register="reg-1", at_ns=rec.capture_ns))
    gaps = [a for a in alerts if a.type == "scan_gap"]
    assert [g.evidence["track_id"] for g in gaps] == [2]
    sessions = [a for a in alerts if a.type == "tally"]
    assert len(sessions) == 1
    assert sessions[0].evidence | {} == {
        **sessions[0].evidence,
        "items": 2,
        "scans": 1,
        "opened_by": "pos",
        "closed_by": "pos",
    }


def test_defect_k_of_n_fires_once_per_object_with_evidence() -> None:
    cfg = {
        "defects": [
            {
                "name": "scratch",
                "classes": ["scratch"],
                "min_confidence": 0.5,
                "k": 3,
                "n": 5,
                "roi": [[0, 0], [400, 0], [400, 576], [0, 576]],
                "critical_confidence": 0.95,
            }
        ]
    }
    confs = [0.2, 0.9, 0.3, 0.8, 0.1, 0.97, 0.9, 0.9, 0.9, 0.9]  # hits at 1, 3, 5: 3 of the last 5
    recs = [
        record(
            "cam",
            i,
            T0 + i * S // 10,
            [(box_at(100, 300), c, "scratch", 11), (box_at(600, 300), 0.99, "scratch", 12)],
        )
        for i, c in enumerate(confs)
    ]
    alerts = run(engine(cfg), recs)
    assert len(alerts) == 1  # track 12 is outside the ROI; track 11 fires once
    a = alerts[0]
    assert a.type == "defect" and a.severity == "critical"
    assert a.evidence["frame_seqs"] == [1, 3, 5]
    assert (
        a.evidence["best_frame"]["seq"] == 5
        and a.evidence["best_frame"]["frame_key"] == "sightline.frames:0:5"
    )
    assert len(a.evidence["boxes"]) == 3


def test_spike_and_drop_from_ewma_z_score() -> None:
    cfg = {
        "lateness_s": 0,
        "anomalies": [
            {
                "name": "crowd",
                "classes": ["person"],
                "bucket_s": 1,
                "warmup_buckets": 5,
                "z_threshold": 3,
                "min_std": 0.5,
            }
        ],
    }
    people = [2] * 20 + [12] + [2] * 20 + [0] * 3 + [2] * 3

    def frames():
        seq = 0
        for b, n in enumerate(people):
            for k in range(5):
                boxes = [(box_at(50 + 40 * j, 300), 0.9, "person", None) for j in range(n)]
                yield record("cam", seq, T0 + b * S + k * S // 5, boxes)
                seq += 1

    alerts = run(engine(cfg), frames())
    assert [(a.type, (a.window.start_ns - T0) // S) for a in alerts] == [("spike", 20), ("drop", 41)]


def test_threshold_count_rate_dwell_and_time_of_day() -> None:
    zone = [[0, 0], [400, 0], [400, 576], [0, 576]]
    cfg = {
        "lateness_s": 0,
        "thresholds": [
            {"name": "crowd", "metric": "count", "classes": ["person"], "op": ">=", "value": 3, "for_s": 1},
            {"name": "loiter", "metric": "dwell", "zone": zone, "op": ">", "value": 5},
            {"name": "busy", "metric": "rate", "op": ">", "value": 20, "window_s": 10},
            {
                "name": "night",
                "metric": "count",
                "classes": ["car"],
                "value": 0,
                "active": [{"start": "22:00", "end": "06:00"}],
                "timezone": "UTC",
            },
        ],
    }
    # T0 is 2023-11-14 22:13:20 UTC: inside the night window.
    walkers = [Walker(i, "person", (500, 100 + 20 * i), (700, 100 + 20 * i), 0, 30) for i in range(1, 4)]
    walkers.append(Walker(10, "person", (100, 300), (110, 300), 0, 100))  # dwells in the zone
    walkers.append(Walker(20, "car", (600, 500), (610, 500), 50, 5))
    alerts = run(engine(cfg), scene("cam", walkers, 100))
    by_rule = {}
    for a in alerts:
        by_rule.setdefault(a.rule, []).append(a)
    assert len(by_rule["crowd"]) == 1  # 4 people for 3 s, fires once after holding 1 s
    assert (by_rule["crowd"][0].window.end_ns - by_rule["crowd"][0].window.start_ns) == S
    assert [a.evidence["track_id"] for a in by_rule["loiter"]] == [10]
    assert by_rule["night"][0].evidence["value"] == 1
    assert "busy" not in by_rule  # a rate needs one full window (10 s) of history first
    assert json.loads(alerts[0].encode())["schema_version"] == 1


def test_snapshot_restore_continues_without_double_counting() -> None:
    walkers = [Walker(i, "person", (60 * i, 150), (60 * i, 450), 4 * i, 20) for i in range(1, 10)]
    records = list(scene("cam", walkers, 120))
    full = run(engine({"lanes": [LINE_LANE]}), records)
    first = engine({"lanes": [LINE_LANE]})
    part = run(first, records[:33], flush=False)
    blob = json.dumps(first.cameras["cam"].snapshot())
    second = engine({"lanes": [LINE_LANE]})
    second.camera("cam").restore(json.loads(blob))
    part += run(second, records[33:])
    assert [a.alert_id for a in part] == [a.alert_id for a in full]
    assert [a.evidence["counts"] for a in part] == [a.evidence["counts"] for a in full]


# -- skipped frames: not seen, which is not seen empty ---------------------------------------------

STALE = Skipped(reason="stale", age_ms=900.0, max_age_ms=500.0)
PERSON_IN_ZONE = (box_at(620, 450), 0.9, "person", 7)
ZONE = [[500, 300], [760, 300], [760, 570], [500, 570]]


def frames(seen: dict[int, list], skipped: range, n: int) -> list:
    """Records 0..n-1 at 10 fps: those in `skipped` skipped by the worker, the others carrying
    `seen.get(k, [])`."""
    out = []
    for k in range(n):
        rec = record("cam", k, T0 + k * S // 10, [] if k in skipped else seen.get(k, []))
        out.append(rec.replace(skipped=STALE, timing=None) if k in skipped else rec)
    return out


def test_skipped_frames_break_a_threshold_episode() -> None:
    rule = {"name": "empty", "metric": "count", "classes": ["person"], "op": "==", "value": 0, "for_s": 1}
    # Seen empty for 1.5 s: the condition held 1 s, the rule fires.
    assert len(run(engine({"thresholds": [rule]}), frames({}, range(0), 16))) == 1
    # Frames 4-12 skipped: "nobody there" was observed 0.0-0.3 s and 1.3-1.5 s, never for 1 s.
    assert run(engine({"thresholds": [rule]}), frames({}, range(4, 13), 16)) == []


def test_dwell_does_not_accumulate_across_skipped_frames() -> None:
    rule = {"name": "loiter", "metric": "dwell", "classes": ["person"], "zone": ZONE, "value": 3}
    inside = dict.fromkeys(range(45), [PERSON_IN_ZONE])
    # In the zone for 4.4 s: fires once.
    assert len(run(engine({"thresholds": [rule]}), frames(inside, range(0), 45))) == 1
    # Seen 0.0-0.9 s and 3.5-4.4 s, skipped between: never seen in the zone for 3 s.
    assert run(engine({"thresholds": [rule]}), frames(inside, range(10, 35), 45)) == []


def test_skipped_frames_do_not_expire_a_track_into_a_second_count() -> None:
    lane = {"name": "zone-lane", "zone": ZONE, "classes": ["person"], "window_s": 60}
    inside = dict.fromkeys(range(50), [PERSON_IN_ZONE])
    # 3.5 s of skipped frames, longer than the 2 s track TTL: the track is still the same one.
    alerts = run(engine({"track_ttl_s": 2, "lanes": [lane]}), frames(inside, range(5, 40), 50))
    assert [a.evidence["counts"] for a in alerts if a.type == "tally"] == [{"person": 1}]


def test_skipped_frames_feed_no_rule_but_advance_event_time() -> None:
    rule = {"name": "crowd", "classes": ["person"], "bucket_s": 1, "warmup_buckets": 3}
    two = [(box_at(100, 400), 0.9, "person", 1), (box_at(300, 400), 0.9, "person", 2)]
    seen = dict.fromkeys(range(80), two)
    # Half of second 5 skipped: its mean is still 2 per seen frame, no "drop" to 1.
    eng = engine({"lateness_s": 0, "anomalies": [rule]})
    assert run(eng, frames(seen, range(50, 55), 80), flush=False) == []
    # Event time moved on with the skipped records: every closed bucket has been evaluated,
    # including seconds 6-7 that only skipped records reached.
    eng = engine({"lateness_s": 0, "anomalies": [rule]})
    alerts = run(eng, frames(seen, range(60, 80), 80), flush=False)
    state = eng.cameras["cam"].snapshot()
    assert alerts == [] and state["rules"]["crowd"]["buckets"] == {}
    assert state["clock"]["max"] == T0 + 79 * S // 10 and state["clock"]["seen"] == T0 + 59 * S // 10
    # A skipped record's seq counts as applied: a copy of it is a duplicate.
    assert eng.on_record(record("cam", 79, T0 + 79 * S // 10, two)) == []


def test_rectangle_zones_answer_as_the_ray_casting_test_does() -> None:
    """The rectangle shortcut keeps the even-odd test's half-open edges, corners included."""
    rect = Polygon([(100, 50), (300, 50), (300, 200), (100, 200)])
    general = Polygon([(100, 50), (200, 50), (300, 50), (300, 200), (100, 200)])  # a vertex mid-edge
    rng = np.random.default_rng(3)
    edges = [(x, y) for x in (99.5, 100, 200, 300, 300.5) for y in (49.5, 50, 120, 200, 200.5)]
    points = np.vstack([rng.uniform(0, 400, (500, 2)), np.array(edges, dtype=np.float64)])
    assert rect._rectangle and not general._rectangle
    assert rect.contains(points).tolist() == general.contains(points).tolist()
    assert rect.contains(np.empty((0, 2))).tolist() == []
