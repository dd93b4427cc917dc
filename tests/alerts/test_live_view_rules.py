"""The live view's overlays come from the rules the alert processors load (one loader)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sightline.config import load_config
from sightline.drawing import camera_rules, overlays

DEMO = Path(__file__).resolve().parents[2] / "alerts" / "demo_rules.yaml"


def test_rules_file_gives_the_live_view_its_cameras_and_lines(tmp_path: Path) -> None:
    path = tmp_path / "sightline.yaml"
    path.write_text(f"alerts:\n  rules_file: {DEMO}\n")
    rules = camera_rules(load_config(path))
    assert list(rules) == ["cam-vtest"]
    assert {s["kind"] for s in overlays(rules["cam-vtest"])} >= {"line"}


@pytest.mark.parametrize(
    "text", ["version: 1\ncameras:\n  - camera: c1\n    colour: red\n", "cameras: [unclosed\n", None]
)
def test_an_unusable_rules_file_means_no_overlays_not_a_crash(
    tmp_path: Path, text: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    rules_file = tmp_path / "rules.yaml"
    if text is not None:
        rules_file.write_text(text)
    path = tmp_path / "sightline.yaml"
    path.write_text(f"alerts:\n  rules_file: {rules_file}\n")
    assert camera_rules(load_config(path)) == {}
    assert "cannot read the rules file" in caplog.text
