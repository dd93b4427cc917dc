"""`sightline infer`: run an inference worker in the consumer group."""

from __future__ import annotations

import threading

import typer

from sightline.commands.common import config, fail, serve_stage_health
from sightline.commands.models import missing_model_hint
from streams.heap import freeze_startup_heap
from streams.http_health import HealthServer
from streams.signals import stop_on_signals


def infer(
    worker_id: str | None = typer.Option(None, help="Stable id of this worker (default: host name)."),
    delivery: str | None = typer.Option(None, help="at-least-once or exactly-once (overrides the config)."),
    max_idle: float | None = typer.Option(None, help="Exit after this many seconds without frames."),
) -> None:
    """Consume frames, detect in micro-batches, publish detections; Ctrl-C drains and commits."""
    from inference.registry import RegistryError
    from inference.worker import InferenceWorker, WorkerError

    cfg = config()
    if delivery:
        if delivery not in ("at-least-once", "exactly-once"):
            fail("--delivery must be at-least-once or exactly-once")
        cfg.inference.delivery = delivery  # type: ignore[assignment]
    server: HealthServer | None = None
    if cfg.metrics.inference_port:  # before the model loads: a taken port fails at once
        server = serve_stage_health(
            cfg, None, cfg.metrics.inference_port, "metrics.inference_port", "inference-http"
        )
    stop = threading.Event()
    try:
        worker = InferenceWorker(cfg, worker_id=worker_id, stop=stop)
    except RegistryError as exc:
        fail(f"{exc}\n  hint: {missing_model_hint(cfg.inference.model, cfg.inference.registry_dir)}")
    if server is not None:
        server.attach(worker.health)
    freeze_startup_heap()  # the model and libraries are loaded: keep full GC passes off them
    with stop_on_signals(stop):
        try:
            stats = worker.run(max_idle_s=max_idle)
        except WorkerError as exc:
            fail(str(exc))
    typer.echo(
        f"frames={stats.frames} detections={stats.records} dead_letters={stats.dead_letters} "
        f"batches={stats.batches}",
        err=True,
    )
