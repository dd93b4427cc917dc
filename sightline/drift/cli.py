"""`sightline drift`: the drift monitor as a long-running command (mounted by sightline.cli)."""

from __future__ import annotations

import threading

import typer
from prometheus_client import start_http_server


def drift(
    max_idle: float | None = typer.Option(None, help="Exit after this many seconds without records."),
    metrics_port: int | None = typer.Option(None, help="Serve /metrics here (default drift.metrics_port)."),
) -> None:
    """Compare each camera's recent frames and detections with its baseline; alert on drift."""
    from decoders.runner import stop_on_signals
    from sightline.commands.common import config
    from sightline.drift.service import run_drift

    cfg = config()
    port = cfg.drift.metrics_port if metrics_port is None else metrics_port
    if port:
        start_http_server(port, addr=cfg.metrics.host)
    stop = threading.Event()
    with stop_on_signals(stop):
        stats = run_drift(cfg, stop, max_idle_s=max_idle)
    typer.echo(f"frames={stats.frames} detections={stats.detections} alerts={stats.alerts}", err=True)
