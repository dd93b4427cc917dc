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
