"""`sightline bench ...`: throughput benchmarks; the last stdout line is one JSON object."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import typer

from sightline.assets import fetch_registered_model, media_path
from sightline.commands.common import config, print_json_line
from streams.devinfra import DevStack
from streams.topics import ensure_topics

if TYPE_CHECKING:
    from inference.detector import Detector
    from sightline.config import SightlineConfig

app = typer.Typer(help="Benchmarks against the local Kafka.", no_args_is_help=True)

RECOVERY_TARGET_S = 30.0  # chaos: first new detections at most this long after a fault ends


@app.command("decode")
def bench_decode(
    video: str = typer.Option("vtest.avi", help="Sample name or path."),
    rounds: int = typer.Option(3, min=1),
    as_json: bool = typer.Option(False, "--json", help="Only the JSON line on stdout."),
) -> None:
    """Published fps (decode -> Kafka acked) against bare decode + JPEG encode fps."""
    from pathlib import Path

    from sightline.bench import decode as bench

    cfg = config()
    DevStack(cfg.dev).up()
    ensure_topics(cfg)
    path = Path(video) if Path(video).exists() else media_path(video)
    result = bench.run(cfg, path, rounds)
    if not as_json:
        typer.echo(f"published {result['published_fps']} fps, limit {result['limit_fps']} fps", err=True)
    print_json_line(result)


def detector_factory(cfg: SightlineConfig, model: str, batch: int) -> Callable[[int], Detector]:
    """Detectors of the registry's promoted `model` (fetched by recipe if missing), by thread count."""
    from inference.detector import Detector
    from inference.detector_source import engine_kind
    from inference.engines import engine_options
    from inference.fetch import RECIPES
    from inference.registry import ModelRegistry, RegistryError

    registry = ModelRegistry(cfg.inference.registry_dir)
    try:
        manifest, path = registry.promoted(model)
    except RegistryError:
        if model not in RECIPES:
            raise
        fetch_registered_model(model, registry)
        manifest, path = registry.promoted(model)
    kind = engine_kind(cfg)  # CPU by default; SIGHTLINE_INFERENCE__PROVIDER=cuda|tensorrt on a GPU

    def make(threads: int) -> Detector:
        options = engine_options(cfg.inference, kind, threads=threads, max_batch=batch)
        return Detector.from_path(path, manifest, kind, options, max_batch=batch)

    return make


@app.command("inference")
def bench_inference(
    model: str = typer.Option("nanodet-m", help="Registry model name (fetched by recipe if missing)."),
    batch: int = typer.Option(4, min=1, help="max_batch for every measurement."),
    threads: int = typer.Option(2, min=1, help="ONNX Runtime intra-op threads, split between workers."),
    workers: int = typer.Option(
        1, min=1, help="Worker processes in one consumer group (each gets threads // workers, >= 1)."
    ),
    frames: int = typer.Option(300, min=10, help="Backlog size for the pipeline measurement."),
    rounds: int = typer.Option(2, min=1),
    raw_s: float = typer.Option(5.0, "--raw-s", min=0.5, help="Seconds per raw engine measurement."),
    live: bool = typer.Option(True, "--latency/--no-latency", help="Run the live frame-age phase."),
    duration: float | None = typer.Option(
        None, help="Soak: run the live phase this long; reports RSS growth."
    ),
    video: str = typer.Option("vtest.avi"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Pipeline fps (frames topic -> acked detections) against raw engine fps, plus frame age.

    raw_fps is the engine alone at the input shape the pipeline uses (raw_fps_square: the
    model's nominal square input); pipeline_fps / eos_pipeline_fps drain the same backlog with
    at-least-once and exactly-once delivery (eos_ratio = their ratio); overhead_ms_per_frame is
    the workers' CPU from first fetch to last ack, less the engine's CPU for those frames (raw
    phase, same shape, batch and per-worker threads), per frame; cpu_ms_per_frame_by_thread
    splits the workers' CPU in that window by thread (engine, jpeg, prepare, consumer, ...).
    `drain` audits each mode:
    distinct (camera, seq) in the committed detections against the frames published.
    Exits 1 when a frame was lost or exactly-once delivered one twice."""
    from pathlib import Path

    from sightline.bench import inference as bench

    cfg = config()
    DevStack(cfg.dev).up()
    cfg.inference.max_batch = batch
    cfg.inference.threads = threads
    make_detector = detector_factory(cfg, model, batch)
    detector = make_detector(threads)
    clip = Path(video) if Path(video).exists() else media_path(video)
    result = bench.run(
        cfg, detector, clip, batch=batch, threads=threads, workers=workers, make_detector=make_detector,
        frames=frames, rounds=rounds, raw_s=raw_s, live=live, duration=duration,
    )  # fmt: skip
    if not as_json:
        typer.echo(
            f"pipeline {result['pipeline_fps']} fps (exactly-once {result['eos_pipeline_fps']}) vs raw "
            f"{result['raw_fps']} fps; overhead {result['overhead_ms_per_frame']} ms/frame; CPU by thread "
            f"{result['cpu_ms_per_frame_by_thread']['at-least-once']} ms/frame; "
            f"lost {result['lost']}, duplicates {result['duplicates']}",
            err=True,
        )
    print_json_line(result)
    if result["lost"] or result["drain"]["exactly-once"]["duplicates"]:
        raise typer.Exit(1)


@app.command("batch")
def bench_batch(
    model: str = typer.Option("nanodet-m", help="Registry model name (fetched by recipe if missing)."),
    batch: int = typer.Option(4, min=1, help="Frames per model run, for both measurements."),
    threads: int = typer.Option(2, min=1, help="ONNX Runtime intra-op threads."),
    rounds: int = typer.Option(2, min=1),
    raw_s: float = typer.Option(5.0, "--raw-s", min=0.5, help="Seconds per raw engine measurement."),
    limit: int | None = typer.Option(None, "--frames", min=1, help="Only the video's first N frames."),
    video: str = typer.Option("vtest.avi"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """`sightline batch` fps (decode, prepare, engine, finish, tracking, JSON) against the raw
    engine on the same video's frames, at the same input shape and batch; ratio = batch / raw."""
    from pathlib import Path

    from sightline.bench.inference import batch_vs_raw

    cfg = config()
    detector = detector_factory(cfg, model, batch)(threads)
    clip = Path(video) if Path(video).exists() else media_path(video)
    result = batch_vs_raw(detector, clip, batch=batch, rounds=rounds, raw_s=raw_s, limit=limit)
    result["threads"] = threads
    if not as_json:
        typer.echo(f"batch {result['batch_fps']} fps vs raw {result['raw_fps']} fps", err=True)
    print_json_line(result)


@app.command("chaos")
def bench_chaos(
    faults: str | None = typer.Option(
        None, help="Comma-separated faults, run in order (default: all; the cluster's two with --brokers 3)."
    ),
    brokers: int = typer.Option(1, min=1, help="Kafka brokers: 3 runs a cluster (replication 3, min ISR 2)."),
    delivery: str = typer.Option("both", help="at-least-once, exactly-once or both (one after the other)."),
    duration: float = typer.Option(
        30.0, min=1, help="Seconds of normal running before each fault (seeded 50-100%)."
    ),
    outage_s: float | None = typer.Option(
        None, "--outage-s", help="Length of every outage (default: per fault)."
    ),
    recovery_timeout: float = typer.Option(90.0, help="Give up waiting for new detections after a fault."),
    seed: int = typer.Option(0, help="Seed for the injection points."),
    workdir: str | None = typer.Option(
        None, help="Logs, configs and the private stack (default: a temp dir)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Only the JSON line on stdout."),
) -> None:
    """Whole chain as processes on a private Kafka + Redis, one fault at a time: lost and duplicates.

    Exits 1 when anything was lost or doubled, a stage exited or got stuck, or a recovery took
    longer than 30 s."""
    import signal
    import sys
    from pathlib import Path

    from sightline.bench.chaos import MODES, ChaosOptions, run_chaos
    from sightline.bench.chaos_faults import default_faults

    modes = list(MODES) if delivery == "both" else [delivery]
    if any(m not in MODES for m in modes):
        typer.echo("error: --delivery must be at-least-once, exactly-once or both", err=True)
        raise typer.Exit(2)
    options = ChaosOptions(
        faults=[f.strip() for f in faults.split(",") if f.strip()] if faults else default_faults(brokers),
        brokers=brokers,
        modes=modes,
        duration_s=duration,
        outage_s=outage_s,
        recovery_timeout_s=recovery_timeout,
        seed=seed,
    )
    # SIGTERM unwinds like Ctrl-C, so the stages, the cameras and the private stack are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        result = run_chaos(
            config(), options, Path(workdir) if workdir else None, lambda m: typer.echo(m, err=True)
        )
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if not as_json:
        for row in result["faults"]:
            summary = f"recovery {row['recovery_s']} s, lost {row['lost']}, duplicates {row['duplicates']}"
            typer.echo(
                f"{row['mode']:14} {row['fault']:16} {summary}  {'; '.join(row['findings'])}", err=True
            )
    print_json_line(result)
    slow = result["max_recovery_s"] is None or result["max_recovery_s"] > RECOVERY_TARGET_S
    if result["lost"] or result["duplicates"] or result["findings"] or slow:
        raise typer.Exit(1)


@app.command("e2e")
def bench_e2e(
    duration: float = typer.Option(30.0, min=5, help="Seconds of each phase: normal load, then overload."),
    cameras: int | None = typer.Option(
        None, min=1, help="Cameras at normal load (default: the fewest the video's rate allows)."
    ),
    capacity: float | None = typer.Option(
        None, min=1, help="Worker capacity in frames/s (default: measured first, ~30 s)."
    ),
    delivery: str = typer.Option("both", help="at-least-once, exactly-once or both (one after the other)."),
    workdir: str | None = typer.Option(None, help="Logs and configs (default: a temp dir)."),
    as_json: bool = typer.Option(False, "--json", help="Only the JSON line on stdout."),
) -> None:
    """Capture -> detections -> webhook latency of the whole chain at 70% and 150% of capacity.

    Decoders (RTSP cameras: freshness realtime; files at real time: complete), the worker, the
    alert processors and a webhook receiver run as processes on fresh topics of the local Kafka.
    Exits 1 when anything was lost or doubled, or a stage exited."""
    import signal
    import sys
    import tempfile
    from pathlib import Path

    from sightline.bench.chaos import MODES
    from sightline.bench.e2e import E2EOptions, run_e2e

    modes = tuple(MODES) if delivery == "both" else (delivery,)
    if any(m not in MODES for m in modes):
        typer.echo("error: --delivery must be at-least-once, exactly-once or both", err=True)
        raise typer.Exit(2)
    options = E2EOptions(duration_s=duration, cameras=cameras, capacity_fps=capacity, modes=modes)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwinds: stages and cameras stopped
    where = Path(workdir or tempfile.mkdtemp(prefix="sightline-e2e-")).resolve()
    result = run_e2e(config(), options, where, lambda m: typer.echo(m, err=True))
    if not as_json:
        typer.echo(
            f"capture->webhook p50 {result['capture_to_webhook_p50_ms']} ms, "
            f"p99 {result['capture_to_webhook_p99_ms']} ms; "
            f"overload (realtime) p99 {result['overload_capture_to_webhook_p99_ms']} ms; "
            f"lost {result['lost']}, duplicates {result['duplicates']}, skipped {result['skipped']}",
            err=True,
        )
    print_json_line(result)
    if result["lost"] or result["duplicates"] or result["findings"]:
        raise typer.Exit(1)


@app.command("evidence")
def bench_evidence(
    duration: float = typer.Option(60.0, min=5, help="Seconds of alerts measured (by their created_ns)."),
    cameras: int = typer.Option(2, min=1, help="Half RTSP (rounded down), half the file at real time."),
    fps: float = typer.Option(5.0, min=1, help="Frames per second of every camera."),
    cooldown: float = typer.Option(10.0, min=0, help="Rules: seconds between alerts of one grid cell."),
    delivery: str = typer.Option("at-least-once", help="The inference worker's delivery mode."),
    workdir: str | None = typer.Option(None, help="Logs, configs, the evidence store (default: temp dir)."),
    as_json: bool = typer.Option(False, "--json", help="Only the JSON line on stdout."),
) -> None:
    """Alert created -> snapshot and clip stored, with the chain running, and CPU per clip second.

    Exits 1 when evidence is missing or doubled, a target is missed, or a stage exited."""
    import signal
    import sys
    import tempfile
    from pathlib import Path

    from sightline.bench.chaos import MODES
    from sightline.bench.evidence import EvidenceOptions, run_evidence

    if delivery not in MODES:
        typer.echo("error: --delivery must be at-least-once or exactly-once", err=True)
        raise typer.Exit(2)
    options = EvidenceOptions(duration, cameras, fps, cooldown, delivery)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwinds: stages and cameras stopped
    where = Path(workdir or tempfile.mkdtemp(prefix="sightline-evidence-")).resolve()
    result = run_evidence(config(), options, where, lambda m: typer.echo(m, err=True))
    targets = result.pop("targets")
    if not as_json:
        typer.echo(
            f"{result['alerts']} alerts: snapshot p99 {result['snapshot_p99_s']} s, clip p99 "
            f"{result['clip_p99_s']} s, {result['cpu_ms_per_clip_second']} ms CPU per clip second; "
            f"missing {result['missing']}, duplicates {result['duplicates']}",
            err=True,
        )
    print_json_line(result)
    slow = any(result[k] is None or result[k] > targets[k] for k in ("snapshot_p99_s", "clip_p99_s"))
    if result["missing"] or result["duplicates"] or result["findings"] or slow or not result["alerts"]:
        raise typer.Exit(1)
