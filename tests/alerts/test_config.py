"""Alerts configuration: clear, line-numbered errors, and the demo rules for vtest.avi."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerts.replay_rules import evaluate
from alerts.rules.loader import load_rules, rules_for
from alerts.synthetic import Walker, scene
from sightline.config import ConfigError, load_config

DEMO = Path(__file__).resolve().parents[2] / "alerts" / "demo_rules.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sightline.yaml"
    path.write_text(text)
    return path


LANE_HEAD = "alerts:\n  rules:\n    cameras:\n      - camera: c1\n        lanes:\n          - name: l1\n"


@pytest.mark.parametrize(
    ("lane", "message"),
    [
        ("            line: {start: [0, 0], end: [1, 1]}\n            colour: red\n", "sightline.yaml:8: "),
        ("", "needs a line, a zone, or both"),
        ("            zone: [[0, 0], [1, 1]]\n", "at least 3 points"),
        (
            "            zone: [[0, 0], [9, 0], [9, 9]]\n            scan_gap: {}\n",
            "needs the `pos_register`",
        ),
        ("            line: {start: [1, 1], end: [1, 1]}\n", "start and end must differ"),
    ],
)
def test_lane_errors_are_clear(tmp_path: Path, lane: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, LANE_HEAD + lane))
    assert message in str(err.value)
    if "colour" in lane:
        assert "alerts.rules.cameras.0.lanes.0.colour: unknown key" in str(err.value)


def test_rule_and_webhook_errors(tmp_path: Path) -> None:
    cases = {
        "defects: [{name: d, classes: [x], k: 6, n: 5}]": "must not exceed n",
        "thresholds: [{name: t, metric: dwell, value: 3}]": "dwell needs a zone",
        "thresholds: [{name: t, metric: count, value: 3, timezone: Mars/Base}]": "unknown timezone",
        "thresholds: [{name: t, metric: count, value: 3, active: [{start: '25:00', end: '06:00'}]}]": "HH:MM",
        "defects: [{name: d, classes: [x]}]\n        anomalies: [{name: d, classes: [x]}]": "used twice",
    }
    for rule, message in cases.items():
        text = f"alerts:\n  rules:\n    cameras:\n      - camera: c1\n        {rule}\n"
        with pytest.raises(ConfigError) as err:
            load_config(write(tmp_path, text))
        assert message in str(err.value), rule
    hooks = "alerts:\n  webhooks:\n    - {name: a, url: 'http://x/h'}\n"
    with pytest.raises(ConfigError, match="exactly one of `secret` and `secret_env`"):
        load_config(write(tmp_path, hooks))
    hooks = "alerts:\n  webhooks:\n    - {name: a, url: 'http://x/h', secret: s, types: [nonsense]}\n"
    with pytest.raises(ConfigError, match=r"sightline.yaml:3: alerts.webhooks.0.types.0"):
        load_config(write(tmp_path, hooks))
    both = "alerts:\n  rules_file: r.yaml\n  rules: {cameras: []}\n"
    with pytest.raises(ConfigError, match="either `rules_file` or inline `rules`"):
        load_config(write(tmp_path, both))


def test_secret_is_not_echoed_and_env_secret_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = load_config(
        write(tmp_path, "alerts:\n  webhooks:\n    - {name: a, url: 'http://x/h', secret_env: HOOK_S}\n")
    )
    with pytest.raises(ValueError, match="HOOK_S is not set"):
        cfg.alerts.webhooks[0].secret_value()
    monkeypatch.setenv("HOOK_S", "abc")
    assert cfg.alerts.webhooks[0].secret_value() == "abc"
    inline = load_config(
        write(tmp_path, "alerts:\n  webhooks:\n    - {name: a, url: 'http://x/h', secret: hush}\n")
    )
    assert "hush" not in repr(inline)


def test_rules_file_is_found_through_the_config(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, f"alerts:\n  rules_file: {DEMO}\n"))
    assert [c.camera for c in rules_for(cfg.alerts).cameras] == ["cam-vtest"]


def test_demo_rules_on_a_vtest_like_scene() -> None:
    rules = load_rules(DEMO)
    walkers = [
        Walker(i, "person", (150 + 10 * i, 300 + 15 * i), (700, 320 + 15 * i), 10 * i, 60) for i in range(4)
    ]
    walkers.append(Walker(50, "truck", (688, 98), (688, 98), 0, 400))  # the parked van
    # A crowd of 8 passes through for ~6 s around t = 30 s.
    walkers += [Walker(100 + i, "person", (50 + 60 * i, 520), (80 + 60 * i, 540), 300, 60) for i in range(8)]
    records = list(scene("cam-vtest", walkers, 400, start_ns=1_700_000_000_000_000_000 - 11 * 3600 * 10**9))
    alerts = evaluate(rules, records)
    kinds = {(a.type, a.rule) for a in alerts}
    assert ("tally", "road-crossing") in kinds
    assert ("defect", "vehicle-in-restricted-area") in kinds
    assert ("spike", "people-count") in kinds
    assert ("threshold", "crowd") in kinds
    defects = [a for a in alerts if a.type == "defect"]
    assert len(defects) == 1 and defects[0].evidence["track_id"] == 50
    window_counts = sum(
        a.evidence["counts"].get("person", 0) for a in alerts if a.evidence.get("kind") == "window"
    )
    assert window_counts == 4
