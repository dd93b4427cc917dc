"""`sightline bench ...`: throughput benchmarks; the last stdout line is one JSON object."""

from __future__ import annotations

import typer

from sightline.assets import media_path
from sightline.commands.common import config, print_json_line
from streams.devinfra import DevStack
from streams.topics import ensure_topics

app = typer.Typer(help="Benchmarks against the local Kafka.", no_args_is_help=True)


@app.command("decode")
def bench_decode(
    video: str = typer.Option("vtest.avi", help="Sample name or path."),
    rounds: int = typer.Option(3, min=1),
    as_json: bool = typer.Option(False, "--json", help="Only the JSON line on stdout."),
) -> None:
    """Published fps (decode -> Kafka acked) against bare decode + JPEG encode fps."""
    from pathlib import Path

    from decoders import bench

    cfg = config()
    DevStack(cfg.dev).up()
    ensure_topics(cfg)
    path = Path(video) if Path(video).exists() else media_path(video)
    result = bench.run(cfg, path, rounds)
    if not as_json:
        typer.echo(f"published {result['published_fps']} fps, limit {result['limit_fps']} fps", err=True)
    print_json_line(result)


@app.command("inference")
def bench_inference(
    model: str = typer.Option("nanodet-m", help="Registry model name (fetched by recipe if missing)."),
    batch: int = typer.Option(4, min=1, help="max_batch for both measurements."),
    threads: int = typer.Option(2, min=1, help="ONNX Runtime intra-op threads."),
    frames: int = typer.Option(300, min=10, help="Backlog size for the pipeline measurement."),
    rounds: int = typer.Option(2, min=1),
    duration: float | None = typer.Option(
        None, help="Soak: run the live phase this long; reports RSS growth."
    ),
    video: str = typer.Option("vtest.avi"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Pipeline fps (frames topic -> acked detections) against raw engine fps, plus frame age."""
    from pathlib import Path

    from inference.detector import Detector
    from inference.fetch import RECIPES, fetch_model
    from inference.registry import ModelRegistry, RegistryError
    from inference.worker import engine_kind
    from sightline.bench import inference as bench
    from streams.paths import shared_dir

    cfg = config()
    DevStack(cfg.dev).up()
    cfg.inference.max_batch = batch
    cfg.inference.threads = threads
    registry = ModelRegistry(cfg.inference.registry_dir)
    try:
        manifest, path = registry.promoted(model)
    except RegistryError:
        if model not in RECIPES:
            raise
        shared = shared_dir()
        fetch_model(model, registry=registry, seed_dir=shared / "models" if shared else None)
        manifest, path = registry.promoted(model)
    kind = engine_kind(cfg)  # CPU by default; SIGHTLINE_INFERENCE__PROVIDER=cuda|tensorrt on a GPU
    options = {} if kind == "tensorrt" else {"threads": threads}
    detector = Detector.from_path(path, manifest, kind, options, max_batch=batch)
    clip = Path(video) if Path(video).exists() else media_path(video)
    result = bench.run(cfg, detector, clip, batch=batch, threads=threads, frames=frames, rounds=rounds,
                       duration=duration)  # fmt: skip
    if not as_json:
        typer.echo(f"pipeline {result['pipeline_fps']} fps vs raw {result['raw_fps']} fps", err=True)
    print_json_line(result)
