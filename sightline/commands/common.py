"""Shared CLI plumbing: the loaded config, error reporting and each stage's health endpoint."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any, NoReturn

import typer

from sightline.config import ConfigError, SightlineConfig, load_config
from streams.health import Health
from streams.http_health import HealthServer, serve_health
from streams.listen import ListenError

_state: dict[str, Any] = {"config_path": None}


def set_config_path(path: str | None) -> None:
    _state["config_path"] = path


def config() -> SightlineConfig:
    try:
        return load_config(_state["config_path"])
    except ConfigError as exc:
        fail(str(exc))


def fail(message: str, code: int = 1) -> NoReturn:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def serve_stage_health(
    cfg: SightlineConfig, health: Health | None, port: int, setting: str, name: str
) -> HealthServer:
    """Serve a stage's /metrics, /readyz and /healthz on `port` (of `metrics.host`), before the
    stage's slow start so a probe sees "not ready" rather than nothing. A taken port ends the
    command at once with one line naming `setting`."""
    try:
        return serve_health(
            health, cfg.metrics.host, port, setting,
            liveness_timeout_s=cfg.metrics.liveness_timeout_s, name=name,
        )  # fmt: skip
    except ListenError as exc:
        fail(str(exc))


def print_json_line(data: dict[str, Any]) -> None:
    """Benchmarks end with one JSON object on the last stdout line, for machines to read."""
    sys.stdout.write(json.dumps(data, sort_keys=True) + "\n")
    sys.stdout.flush()


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not verbose:  # httpx logs every request at INFO (the demo polls the worker's metrics every 5 s)
        logging.getLogger("httpx").setLevel(logging.WARNING)
