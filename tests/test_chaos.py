"""The chaos benchmark at a small scale: the whole chain as processes, a broker outage and a
decoder kill, in exactly-once mode. Nothing may be lost or doubled, and the report is complete."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

FIELDS = {"fault", "mode", "recovery_s", "alerts_expected", "alerts_delivered", "lost", "duplicates"}


@pytest.mark.chaos
def test_chain_loses_and_doubles_nothing_through_a_broker_outage_and_a_decoder_kill(
    tmp_path: Path, model_registry: Path
) -> None:
    config = tmp_path / "sightline.yaml"
    config.write_text(yaml.safe_dump({"inference": {"registry_dir": str(model_registry)}}))
    workdir = str(tmp_path / "chaos")
    command = [sys.executable, "-m", "sightline.cli", "-c", str(config), "bench", "chaos", "--json",
               "--faults", "kafka,decoder", "--delivery", "exactly-once", "--duration", "6",
               "--outage-s", "5", "--recovery-timeout", "60", "--workdir", workdir]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=480)
    assert done.stdout.strip(), f"no JSON line (rc={done.returncode}):\n{done.stderr[-4000:]}"
    result = json.loads(done.stdout.strip().splitlines()[-1])

    assert [(f["fault"], f["mode"]) for f in result["faults"]] == [
        ("kafka", "exactly-once"),
        ("decoder", "exactly-once"),
    ]
    for fault in result["faults"]:
        assert set(fault) >= FIELDS, fault
        assert fault["frames"] > 0 and fault["alerts_expected"] >= 0, fault
    assert {"lost", "duplicates", "max_recovery_s", "findings"} <= set(result)
    assert result["lost"] == sum(f["lost"] for f in result["faults"])
    assert result["duplicates"] == sum(f["duplicates"] for f in result["faults"])
    report = json.dumps(result["faults"], indent=1)
    assert result["lost"] == 0, f"lost frames, detections or alerts:\n{report}"
    assert result["duplicates"] == 0, f"duplicated frames, detections or alerts:\n{report}"
    for fault in result["faults"]:
        assert not fault["findings"], f"stages exited or got stuck:\n{report}"
        assert fault["recovery_s"] is not None and fault["recovery_s"] < 30, report
    assert done.returncode == 0, done.stderr[-4000:]
