"""`sightline evidence`: snapshots and clips of every alert, as a long-running command."""

from __future__ import annotations

import threading

import typer


def evidence(
    max_idle: float | None = typer.Option(
        None, help="Exit after this many seconds without alerts and with none in progress."
    ),
    metrics_port: int | None = typer.Option(
        None, help="Serve /metrics, /readyz and /healthz here (default metrics.evidence_port)."
    ),
) -> None:
    """Render each alert's snapshot and clip from the frames and detections topics, and keep them."""
    from confluent_kafka import KafkaException

    from sightline.commands.common import config, serve_stage_health
    from sightline.evidence.service import EvidenceService
    from streams.signals import stop_on_signals

    cfg = config()
    port = cfg.metrics.evidence_port if metrics_port is None else metrics_port
    stop = threading.Event()
    service = EvidenceService(cfg, stop)
    if port:
        serve_stage_health(cfg, service.health, port, "metrics.evidence_port", "evidence-http")
    with stop_on_signals(stop):
        try:
            stats = service.run(max_idle)
        except KafkaException as exc:  # a missing topic, authorization: waiting will not fix it
            typer.echo(f"evidence: {exc.args[0] if exc.args else exc}", err=True)
            raise typer.Exit(1) from None
    typer.echo(
        f"alerts={stats.alerts} complete={stats.complete} partial={stats.partial} "
        f"missing={stats.missing} already={stats.already}",
        err=True,
    )
