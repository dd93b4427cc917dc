"""The command line as a user runs it: models registry commands and offline batch mode."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from schemas.detections import DetectionsRecord
from sightline.assets import media_path
from sightline.cli import app

runner = CliRunner()


def test_models_add_promote_rollback_list(own_registry: Path) -> None:
    source = next(own_registry.glob("nanodet-m/1/*.onnx"))
    added = runner.invoke(app, ["models", "add", str(source), "--name", "nanodet-m", "--version", "2"])
    assert added.exit_code == 0, added.output
    assert runner.invoke(app, ["models", "promote", "nanodet-m", "2"]).exit_code == 0
    rows = json.loads(runner.invoke(app, ["models", "list", "--json"]).output)
    assert {(r["version"], r["promoted"]) for r in rows} == {("1", False), ("2", True)}
    rolled = runner.invoke(app, ["models", "rollback", "nanodet-m"])
    assert rolled.exit_code == 0 and "rolled back to 1" in rolled.output
    missing = runner.invoke(app, ["models", "promote", "nanodet-m", "9"])
    assert missing.exit_code != 0


def test_batch_mode_writes_one_line_per_frame(own_registry: Path, tmp_path: Path) -> None:
    out = tmp_path / "bikes.jsonl"
    video = media_path("bikes.mp4")
    result = runner.invoke(app, ["batch", str(video), "--out", str(out), "--max-batch", "4"])
    assert result.exit_code == 0, result.output
    assert " fps -> " in result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["seq"] for line in lines] == list(range(len(lines))) and len(lines) == 250
    classes = {name for line in lines for name in line["detections"]["class_name"]}
    assert {"person", "car"} & classes, classes
    # Detections records, like the topic's: the rules can be tried on them offline.
    records = [DetectionsRecord.decode(line) for line in out.read_bytes().splitlines()]
    assert records[25].capture_ns == 1_000_000_000 and records[25].frame.topic == "file:bikes.mp4"
    rules = tmp_path / "rules.yaml"
    seen = {"name": "any-car", "metric": "count", "classes": ["car"], "op": ">=", "value": 1, "cooldown_s": 5}
    rules.write_text(yaml.safe_dump({"version": 1, "cameras": [{"camera": "bikes", "thresholds": [seen]}]}))
    tried = runner.invoke(app, ["alerts", "test-rules", "--from", str(out), "--rules", str(rules)])
    assert tried.exit_code == 0, tried.output
    assert "0 invalid record(s)" in tried.output and '"rule":"any-car"' in tried.output.replace(" ", "")


def test_bench_batch_reports_batch_against_raw_engine(own_registry: Path) -> None:
    args = ["bench", "batch", "--json", "--frames", "24", "--rounds", "1", "--raw-s", "0.5"]
    args += ["--video", str(media_path("bikes.mp4"))]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["frames"] == 24 and report["batch"] == 4
    assert report["raw_fps"] > 0 and report["batch_fps"] > 0
    assert report["ratio"] == pytest.approx(report["batch_fps"] / report["raw_fps"], abs=0.01)


@pytest.mark.parametrize(
    ("model", "hint"),
    [
        ("yolo11n-untrained", "`sightline models fetch yolo11n-untrained`"),
        ("my-detector", "`sightline models add MODEL.onnx --name my-detector --promote`"),
    ],
)
def test_batch_hint_names_the_model_asked_for(
    model: str, hint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIGHTLINE_INFERENCE__REGISTRY_DIR", str(tmp_path / "empty-registry"))
    video = media_path("bikes.mp4")
    result = runner.invoke(app, ["batch", str(video), "--out", str(tmp_path / "d.jsonl"), "--model", model])
    assert result.exit_code == 1, result.output
    assert f"model '{model}' has no promoted version" in result.output
    assert hint in result.output and "nanodet-m`" not in result.output, result.output


def test_batch_hint_promotes_a_registered_but_unpromoted_model(
    model_registry: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "models"
    source = next(model_registry.glob("nanodet-m/1/*.onnx"))
    monkeypatch.setenv("SIGHTLINE_INFERENCE__REGISTRY_DIR", str(root))
    added = runner.invoke(app, ["models", "add", str(source), "--name", "people", "--version", "3"])
    assert added.exit_code == 0, added.output
    result = runner.invoke(app, ["batch", str(media_path("bikes.mp4")), "--model", "people"])
    assert result.exit_code == 1, result.output
    assert "`sightline models promote people 3`" in result.output, result.output
