"""`sightline drift`: the drift monitor as a long-running command (mounted by sightline.cli)."""

from __future__ import annotations

import threading

import typer


def drift(
    max_idle: float | None = typer.Option(None, help="Exit after this many seconds without records."),
    metrics_port: int | None = typer.Option(
        None, help="Serve /metrics and /readyz here (default drift.metrics_port)."
    ),
) -> None:
    """Compare each camera's recent frames and detections with its baseline; alert on drift."""
    from confluent_kafka import KafkaException

    from sightline.commands.common import config, serve_stage_health
    from sightline.drift.service import DriftService
    from streams.signals import stop_on_signals

    cfg = config()
    port = cfg.drift.metrics_port if metrics_port is None else metrics_port
    stop = threading.Event()
    service = DriftService(cfg, stop)
    if port:
        serve_stage_health(cfg, service.health, port, "drift.metrics_port", "drift-http")
    with stop_on_signals(stop):
        try:
            stats = service.run(max_idle)
        except KafkaException as exc:  # a missing topic, authorization: waiting will not fix it
            typer.echo(f"drift: {exc.args[0] if exc.args else exc}", err=True)
            raise typer.Exit(1) from None
    typer.echo(f"frames={stats.frames} detections={stats.detections} alerts={stats.alerts}", err=True)
