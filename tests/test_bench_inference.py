"""`sightline bench inference`: several worker processes drain one backlog, nothing lost or doubled."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from decoders.resume import key_partition
from sightline.bench.drain import CpuSampler, spread_cameras, thread_group
from sightline.bench.inference import live_cameras
from sightline.cli import app
from tests.conftest import Stack, write_config


def test_spread_cameras_land_on_distinct_partitions() -> None:
    names = spread_cameras(4, 6)
    assert len({key_partition(n.encode(), 6) for n in names}) == 4


def test_live_phase_keeps_one_camera_per_batch_slot_whatever_the_rate() -> None:
    # 42.8 and 44.1 fps pipelines (70% load 30.0 and 30.9 fps) once got 3 and 4 cameras.
    assert live_cameras(0.7 * 42.8, 10.0, 4) == live_cameras(0.7 * 44.1, 10.0, 4) == 4
    assert live_cameras(0.7 * 26.1, 10.0, 4) == 4  # YOLO11n on 2 cores: 4 cameras at 4.6 fps
    assert live_cameras(700.0, 10.0, 8) == 70  # a GPU: no camera faster than the video


def test_cpu_sampler_reads_cpu_between_two_past_instants() -> None:
    with CpuSampler(period_s=0.01) as cpu:
        time.sleep(0.1)
        start, burn_from = time.monotonic(), time.process_time()
        while time.process_time() - burn_from < 0.3:  # busy: CPU advances with wall time
            pass
        end = time.monotonic()
        time.sleep(0.2)  # idle after the window: must not count
    assert cpu.between(start, end) == pytest.approx(0.3, abs=0.06)


def test_bench_inference_two_workers_lose_and_double_nothing(
    stack: Stack, own_registry: Path, tmp_path: Path
) -> None:
    config = write_config(stack.config, tmp_path / "sightline.yaml")
    args = ["-c", str(config), "bench", "inference", "--json", "--workers", "2", "--threads", "2"]
    args += ["--frames", "40", "--rounds", "1", "--raw-s", "1", "--no-latency"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["workers"] == 2 and report["threads_per_worker"] == 1
    for mode in ("at-least-once", "exactly-once"):
        drained = report["drain"][mode]
        assert drained["published"] == 40, drained
        assert drained["lost"] == 0 and drained["duplicates"] == 0 and drained["dead_letters"] == 0, drained
    assert report["drain"]["exactly-once"]["records"] == 40
    assert report["pipeline_fps"] > 0 and report["eos_pipeline_fps"] > 0 and report["raw_fps"] > 0
    assert report["engine_cpu_ms_per_frame"] > 0
    # The decode pool, the model and the loop all ran, and the split accounts for the worker's CPU
    # (/proc counts in 10 ms ticks, so a stage as short as `finish` may not show in 40 frames).
    by_thread = report["cpu_ms_per_frame_by_thread"]["at-least-once"]
    assert {"engine", "jpeg", "prepare", "consumer"} <= set(by_thread), by_thread
    total = report["engine_cpu_ms_per_frame"] + report["overhead_ms_per_frame"]
    assert sum(by_thread.values()) == pytest.approx(total, rel=0.25), (by_thread, total)


def test_thread_groups_name_the_worker_parts() -> None:
    assert thread_group("MainThread", "python") == "consumer"
    assert thread_group("jpeg_1", "python") == "jpeg"
    assert thread_group("engine", "python") == "engine"
    assert thread_group(None, "rdk:broker1") == "librdkafka"
    assert thread_group(None, "python") == "native pools"


def test_cpu_sampler_splits_cpu_by_thread() -> None:
    def burn(seconds: float) -> None:
        start = time.thread_time()
        while time.thread_time() - start < seconds:
            pass

    burnt, release = threading.Event(), threading.Event()

    def burner() -> None:  # stays alive past the window, as a worker's threads do
        burn(0.3)
        burnt.set()
        release.wait(10)

    with CpuSampler(period_s=0.01, threads_every=2) as cpu:
        time.sleep(0.1)
        start = time.monotonic()
        worker = threading.Thread(target=burner, name="burner_0")
        worker.start()
        burn(0.15)  # the main thread: "consumer"
        burnt.wait(10)
        end = time.monotonic()
        time.sleep(0.2)  # idle after the window: must not count
        release.set()
        worker.join()
    split = cpu.threads_between(start, end)
    assert split["burner"] == pytest.approx(0.3, abs=0.08), split
    assert split["consumer"] == pytest.approx(0.15, abs=0.08), split
