"""CLI entry points for the API (mounted by sightline.cli): `sightline api` and `sightline bench api`."""

from __future__ import annotations

import typer


def api(
    host: str | None = typer.Option(None, help="Bind address (default api.host)."),
    port: int | None = typer.Option(None, help="Port (default api.port)."),
) -> None:
    """Serve the HTTP API and live view with uvicorn (docs at /docs)."""
    from sightline.api.server import serve
    from sightline.commands.common import config, fail
    from streams.listen import ListenError

    cfg = config()
    if host:
        cfg.api.host = host
    if port:
        cfg.api.port = port
    try:
        serve(cfg)
    except ListenError as exc:
        fail(str(exc))


def bench_api(
    image: str = typer.Option("bus.jpg", help="Sample name or path of the JPEG to post."),
    concurrency: int = typer.Option(8, min=1, help="Concurrent HTTP clients."),
    duration: float = typer.Option(20.0, min=1, help="Seconds of load."),
    as_json: bool = typer.Option(False, "--json", help="Only the JSON line on stdout."),
) -> None:
    """Requests/s and latency of POST /v1/detect (in-process uvicorn) against the bare engine's fps."""
    from pathlib import Path

    from sightline.api.bench import run
    from sightline.assets import media_path
    from sightline.commands.common import config, print_json_line

    cfg = config()
    path = Path(image) if Path(image).exists() else media_path(image)
    result = run(cfg, path, concurrency, duration)
    if not as_json:
        typer.echo(
            f"{result['rps']} req/s (p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, "
            f"{result['errors']} errors) vs engine {result['raw_fps']} fps: ratio {result['ratio']}",
            err=True,
        )
    print_json_line(result)
