"""`sightline demo`: the whole chain on the sample videos (what `make run` runs)."""

from __future__ import annotations

from pathlib import Path

import typer

from sightline.commands.common import config
from streams.signals import stop_on_signals


def demo(
    duration: float = typer.Option(0, help="Stop after this many seconds; 0 runs until Ctrl-C."),
    workdir: Path = typer.Option(Path(".sightline/demo"), help="Config and logs of the stages."),
    api: bool = typer.Option(True, help="Start the API and live view."),
    keep_infra: bool = typer.Option(
        False, "--keep-infra", help="Leave Kafka and Redis running at the end even if the demo started them."
    ),
) -> None:
    """Kafka + Redis, two RTSP cameras, decoder, inference, alerts, webhook receiver, API.

    Stops Kafka and Redis at the end if it started them; exits 1, naming the stage and its log,
    when a stage process ends on its own."""
    from sightline.demo import Demo, say

    run = Demo(workdir, config())
    try:
        with stop_on_signals(run.stop):
            run.start(with_api=api)
            summary = run.run(duration or None)
    finally:
        run.shutdown()
        run.stop_infra(keep=keep_infra)
    if run.exited:
        for exited in run.exited:
            typer.secho(f"error: {exited}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)
    say(f"stopped cleanly: {summary}")
