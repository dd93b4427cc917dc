"""Rules versions without a broker: switching rules between records, conversion of checkpoints,
the catalog, validation messages and diffs."""

from __future__ import annotations

import json

import pytest

from alerts.engine import Engine
from alerts.replay_rules import Located, Switch, evaluate
from alerts.settings import RulesSettings
from alerts.versions import (
    Catalog,
    RulesInvalid,
    changed_rules,
    document_of,
    new_record,
    unified_diff,
    validate_camera,
    validate_document,
    with_camera,
)
from schemas.alert import AlertRecord
from tests.alerts.rules_scenario import camera_rules, records, rules_v1, rules_v2


def located(recs: list) -> list[Located]:
    return [Located(r, 0, i) for i, r in enumerate(recs)]


def by_rule(alerts: list[AlertRecord], camera: str, rule: str) -> list[AlertRecord]:
    return [a for a in alerts if a.camera_id == camera and a.rule == rule]


def test_a_switch_keeps_unchanged_rules_and_restarts_changed_ones() -> None:
    recs = records()
    v1, v2 = RulesSettings(**rules_v1()), RulesSettings(**rules_v2())
    cut = len(recs) // 2
    switched = evaluate(v1, located(recs), flush=False, switches=[Switch(v2, 2, cut)])
    before = evaluate(v1, recs[:cut], flush=False)
    assert {a.rules_version for a in switched[: len(before)]} == {0}
    assert [a.alert_id for a in switched[: len(before)]] == [a.alert_id for a in before]
    after = switched[len(before) :]
    assert after and {a.rules_version for a in after} == {2}
    # Unchanged rules (both lanes, cam-1's defects): exactly what v1 alone raises, state kept.
    only_v1 = evaluate(v1, recs, flush=False)
    for camera, rule in (("cam-0", "door"), ("cam-1", "door"), ("cam-1", "scratch")):
        assert [a.alert_id for a in by_rule(switched, camera, rule)] == [
            a.alert_id for a in by_rule(only_v1, camera, rule)
        ]
        assert [a.evidence for a in by_rule(switched, camera, rule)] == [
            a.evidence for a in by_rule(only_v1, camera, rule)
        ]
    # cam-0's changed defect rule starts fresh; everything else keeps its state.
    engine = Engine(v1)
    for r in recs[:cut]:
        engine.on_record(r)
    before_switch = {c: e.snapshot() for c, e in engine.cameras.items()}
    assert engine.switch(v2, 2) == ["cam-0", "cam-1"]
    cam0 = engine.cameras["cam-0"].snapshot()
    assert cam0["rules"]["scratch"] == engine.cameras["cam-0"].evaluators[1].initial_state()
    assert before_switch["cam-0"]["rules"]["scratch"] != cam0["rules"]["scratch"]
    assert cam0["rules"]["door"] == before_switch["cam-0"]["rules"]["door"]
    assert cam0["clock"] == before_switch["cam-0"]["clock"] and cam0["rules_version"] == 2
    assert engine.cameras["cam-1"].snapshot()["rules"] == before_switch["cam-1"]["rules"]


def test_a_checkpoint_of_the_old_version_converts_like_a_switch() -> None:
    recs = records()
    v1, v2 = RulesSettings(**rules_v1()), RulesSettings(**rules_v2())
    cut = len(recs) // 2
    live = Engine(v1)
    for r in recs[:cut]:
        live.on_record(r)
    blobs = {c: json.dumps(e.snapshot()) for c, e in live.cameras.items()}
    live.switch(v2, 2)
    restarted = Engine(v2, 2)
    for camera, blob in blobs.items():
        restarted.camera(camera).restore(json.loads(blob))
    for camera in blobs:
        assert restarted.cameras[camera].snapshot()["rules"] == live.cameras[camera].snapshot()["rules"]
    a = [x for r in recs[cut:] for x in live.on_record(r)]
    b = [x for r in recs[cut:] for x in restarted.on_record(r)]
    assert a == b and a


def test_switch_points_by_partition_and_in_order() -> None:
    recs = records(frames=100)
    v1, v2 = RulesSettings(**rules_v1()), RulesSettings(**rules_v2())
    where = [Located(r, 1, 1000 + i) for i, r in enumerate(recs)]
    never = evaluate(v1, where, flush=True, switches=[Switch(v2, 2, 0, partition=0)])
    assert {a.rules_version for a in never} == {0}
    at_once = evaluate(v1, where, flush=True, switches=[Switch(v2, 2, 0, partition=1)])
    assert [a.alert_id for a in at_once] == [a.alert_id for a in evaluate(v2, recs, flush=True)]
    assert {a.rules_version for a in at_once} == {2}
    with pytest.raises(ValueError, match="positions"):
        evaluate(v1, recs, switches=[Switch(v2, 2, 0)])


def test_each_partition_switches_at_its_own_point() -> None:
    """Read partition after partition (as test-rules reads a topic), each switches at its own
    offset: the same as each partition on its own, and flushing converts what passed its point."""
    recs = records(frames=120)
    v1, v2 = RulesSettings(**rules_v1()), RulesSettings(**rules_v2())
    parts = {p: [r for r in recs if r.camera_id == f"cam-{p}"] for p in (0, 1)}
    where = [Located(r, p, 500 + i) for p in (0, 1) for i, r in enumerate(parts[p])]
    points = [Switch(v2, 2, 530, partition=0), Switch(v2, 2, 590, partition=1)]
    for flush in (False, True):
        together = evaluate(v1, where, flush=flush, switches=points)
        alone = []
        for p in (0, 1):
            mine = [w for w in where if w.partition == p]
            alone += evaluate(v1, mine, flush=flush, switches=[points[p]])
        assert sorted(a.model_dump_json() for a in together) == sorted(a.model_dump_json() for a in alone)
    flushed = evaluate(v1, where, flush=True, switches=points)
    assert {a.rules_version for a in flushed[-4:]} == {2}  # both cameras converted before the flush


def test_catalog_first_record_of_a_number_wins_and_invalid_documents_are_ignored() -> None:
    fallback = RulesSettings(**rules_v1())
    catalog = Catalog()
    assert catalog.latest == 0 and catalog.in_force(fallback) == (0, fallback)
    first = new_record(catalog, RulesSettings(**rules_v2()), "ann", "k=3", 1)
    second = new_record(catalog, fallback, "bob", "race", 2)
    assert first.version == second.version == 1
    assert catalog.add(first) and not catalog.add(second)
    assert catalog.get(1).author == "ann"
    bad = first.model_copy(update={"version": 2, "rules": {"cameras": [{"camera": "x", "colour": 1}]}})
    assert not catalog.add(bad) and catalog.latest == 1
    assert catalog.previous() == 0
    assert catalog.rules(0, fallback) is fallback
    with pytest.raises(KeyError):
        catalog.get(7)


def test_validation_names_each_field() -> None:
    doc = rules_v1()
    doc["cameras"][0]["lanes"][0]["line"]["band_px"] = -1
    doc["cameras"][1]["defects"][0]["k"] = 9
    with pytest.raises(RulesInvalid) as info:
        validate_document(doc)
    paths = {e.path: e.message for e in info.value.errors}
    assert "cameras.0.lanes.0.line.band_px" in paths
    assert "greater than or equal to 0" in paths["cameras.0.lanes.0.line.band_px"]
    assert any("k (9) must not exceed n (4)" in m for m in paths.values())
    with pytest.raises(RulesInvalid) as info:
        validate_camera({"camera": "c", "lanes": [{"name": "l", "colour": "red"}]})
    [error] = info.value.errors
    assert error.path == "lanes.0.colour" and error.message.startswith("unknown key; valid keys: classes")


def test_one_camera_replaced_and_the_whole_validated_again() -> None:
    current = RulesSettings(**rules_v1())
    edited = validate_camera(camera_rules("cam-1", window_s=10))
    merged = with_camera(current, edited)
    assert [c.camera for c in merged.cameras] == ["cam-0", "cam-1"]
    assert merged.cameras[1].lanes[0].window_s == 10
    changes = changed_rules(current, merged)
    assert changes["cam-1"] == {"added": [], "removed": [], "changed": ["door"], "kept": ["scratch"]}
    assert changes["cam-0"]["changed"] == []
    text = unified_diff(document_of(current), document_of(merged), "v1", "v2")
    assert "-    window_s: 4.0" in text and "+    window_s: 10.0" in text
    assert text.count("\n-") == 1 and text.count("\n+") == 2  # one line changed (+ the +++ header)
