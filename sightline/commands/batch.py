"""`sightline batch`: detections for a recorded video at full speed, without Kafka."""

from __future__ import annotations

from pathlib import Path

import typer

from sightline.commands.common import config, fail
from sightline.commands.models import missing_model_hint


def batch(
    video: Path = typer.Argument(..., exists=True, dir_okay=False),
    model: str | None = typer.Option(None, help="Registry model name (default: the config's)."),
    out: Path = typer.Option(Path("detections.jsonl"), help="JSON Lines output, one line per frame."),
    max_batch: int | None = typer.Option(None, help="Frames per model run (default: the config's)."),
    no_tracking: bool = typer.Option(False, "--no-tracking"),
) -> None:
    """Process a recorded video through the same engine and output decoders as the workers."""
    from inference.detector import Detector
    from inference.detector_source import engine_kind
    from inference.engines import engine_options
    from inference.registry import IntegrityError, ModelRegistry, RegistryError
    from sightline.batch import run_batch

    cfg = config()
    size = max_batch or cfg.inference.max_batch
    name = model or cfg.inference.model
    try:
        manifest, path = ModelRegistry(cfg.inference.registry_dir).promoted(name)
    except IntegrityError as exc:  # registered, but its bytes changed: no command fixes that
        fail(str(exc))
    except RegistryError as exc:
        fail(f"{exc}\n  hint: {missing_model_hint(name, cfg.inference.registry_dir)}")
    kind = engine_kind(cfg)
    options = engine_options(cfg.inference, kind, max_batch=size)
    detector = Detector.from_path(
        path, manifest, kind, options, max_batch=size,
        score_threshold=cfg.inference.score_threshold, nms_iou=cfg.inference.nms_iou,
    )  # fmt: skip
    with out.open("w") as handle:
        result = run_batch(video, detector, handle, batch=size, tracking=not no_tracking)
    typer.echo(f"{result['frames']} frames in {result['seconds']} s: {result['fps']} fps -> {out}")
