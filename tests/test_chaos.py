"""The chaos benchmark at a small scale: the whole chain as processes, a broker outage and a
decoder kill, in exactly-once mode. Nothing may be lost or doubled, and the report is complete.
Its audit is checked on its own too, on records that hold every kind of loss and duplicate."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import Stack, write_config

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


def test_the_audit_counts_missing_and_repeated_frames_detections_and_alerts(
    stack: Stack, tmp_path: Path
) -> None:
    """The benchmark's own check, on records it is handed: it must see every kind of loss and
    duplicate, or a clean chaos run would prove nothing."""
    from types import SimpleNamespace

    from alerts.synthetic import record
    from sightline.bench.chaos import ChaosOptions, ModeRun, StageKill, Window, camera_rules
    from streams.kafka import make_producer

    config = stack.fresh_config("chaos-audit", partitions=1)
    frames, dets = config.topics.frames.name, config.topics.detections.name
    producer = make_producer(config.kafka)
    base = time.time_ns()
    for offset, seq in enumerate([0, 1, 2, 2, 4]):  # seq 2 twice, seq 3 never
        headers = {"camera-id": "cam", "seq": str(seq), "capture-ns": str(base + offset)}
        producer.produce(frames, key=b"cam", value=b"", headers=list(headers.items()))
    for offset in [0, 1, 1, 3]:  # frames 2 and 4 without detections, frame 1 twice
        rec = record("cam", offset, base + offset, [], frames_topic=frames)
        rec = rec.replace(frame=rec.frame.model_copy(update={"offset": offset}))
        producer.produce(dets, key=b"cam", value=rec.encode())
    producer.flush(10)
    write_config(config, tmp_path / "sightline.yaml")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"version": 1, "cameras": [camera_rules("cam")]}))
    stray = {"alert_id": "f" * 32, "camera_id": "cam", "capture_ns": base}  # raised by no rule
    chain = SimpleNamespace(
        config=config, mode="exactly-once", file_camera="cam", live_camera="-", live=False,
        workdir=tmp_path, rules_file=tmp_path / "rules.yaml",
        deliveries=lambda: [SimpleNamespace(alert_id=stray["alert_id"], body=json.dumps(stray))],
    )  # fmt: skip
    run = ModeRun(chain, ChaosOptions(), random.Random(0), print)  # type: ignore[arg-type]
    [row] = run.audit([Window(StageKill("worker", stage="inference"), start_ns=0)])

    assert (row["frames"], row["frames_without_detections"], row["duplicate_detections"]) == (5, 2, 1)
    assert (row["seq_gaps"], row["seq_repeats"], row["alerts_unexpected"]) == (1, 1, 1)
    assert row["lost"] == 2 + 1  # frames without detections + the skipped seq
    assert row["duplicates"] == 1 + 1 + 1  # repeated seq + second detections record + stray alert
