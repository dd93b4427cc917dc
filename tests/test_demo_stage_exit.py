"""`sightline demo` fails loudly when one of its stages dies, and stops the Kafka and Redis it started.

The demo runs as `make run` runs it (a `sightline demo` process) on a Kafka and Redis of its own,
which it starts itself; the test kills the inference stage with SIGKILL and expects exit code 1,
a message naming the stage, its pid and log, the other stages stopped and the broker stopped.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

from sightline.config import DevSettings, SightlineConfig
from streams.devinfra import DevStack, free_port
from tests.conftest import write_config


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_demo_exits_1_naming_a_killed_stage_and_stops_the_infra_it_started(
    model_registry: Path, tmp_path: Path
) -> None:
    dev = DevSettings(kafka_port=free_port(), kafka_controller_port=free_port(), redis_port=free_port(),
                      data_dir=tmp_path / "stack")  # fmt: skip
    config = SightlineConfig(
        kafka={"bootstrap_servers": f"127.0.0.1:{dev.kafka_port}"},
        redis={"url": f"redis://127.0.0.1:{dev.redis_port}/0"},
        dev=dev.model_dump(),
        inference={"registry_dir": str(model_registry)},
        metrics={"decoder_port": 0, "inference_port": 0, "alerts_port": 0, "evidence_port": 0},
        drift={"metrics_port": 0},
    )
    command = [sys.executable, "-m", "sightline.cli", "-c", str(write_config(config, tmp_path / "s.yaml")),
               "demo", "--duration", "300", "--no-api", "--workdir", str(tmp_path / "demo")]  # fmt: skip
    # cwd: the alert processors' faust data directory lands there, not in the checkout.
    demo = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path
    )
    watchdog = threading.Timer(400, demo.kill)  # a hung demo fails the test instead of hanging it
    watchdog.start()
    try:
        assert demo.stdout is not None
        lines: list[str] = []
        stages: dict[str, int] = {}
        for line in demo.stdout:
            lines.append(line)
            if found := re.match(r"stage (\w+): pid (\d+), log ", line):
                stages[found[1]] = int(found[2])
            if {"decoder", "inference", "alerts"} <= set(stages):
                break
        assert "inference" in stages, "".join(lines)
        os.kill(stages["inference"], signal.SIGKILL)
        rest, _ = demo.communicate(timeout=300)
        still_running = [s.name for s in DevStack(dev).status() if s.running]
    finally:
        watchdog.cancel()
        DevStack(dev).down()  # only does something if the demo left them running
    output = "".join(lines) + rest
    log = tmp_path / "demo" / "inference.log"
    assert demo.returncode == 1, output
    expected = (
        f"stage inference (pid {stages['inference']}) exited with code -9 (killed by SIGKILL); see {log}"
    )
    assert expected in output, output
    assert "stopped cleanly" not in output
    assert not any(_alive(pid) for pid in stages.values()), f"stages left running: {stages}"
    assert "stopping Kafka and Redis (started by the demo)" in output, output
    assert still_running == [], f"the demo's own {still_running} still run after it ended"
