"""The `sightline` command: a thin layer over the stages, one sub-command per job."""

from __future__ import annotations

import typer

from sightline.api.cli import api, bench_api
from sightline.commands import alerts as alerts_cli
from sightline.commands import assets, bench, cameras, common, dev, models
from sightline.commands import rules as rules_cli
from sightline.commands.batch import batch
from sightline.commands.decode import decode, frames_app
from sightline.commands.demo import demo
from sightline.commands.infer import infer
from sightline.dataset.cli import app as dataset_app
from sightline.drift.cli import drift
from sightline.evidence.cli import evidence

app = typer.Typer(help="Sightline: streaming video analytics over Apache Kafka.", no_args_is_help=True)


@app.callback()
def main(
    config_path: str | None = typer.Option(
        None, "--config", "-c", envvar="SIGHTLINE_CONFIG", help="YAML configuration file."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    common.set_config_path(config_path)
    common.setup_logging(verbose)


app.add_typer(dev.app, name="dev")
app.add_typer(dev.topics_app, name="topics")
app.add_typer(assets.app, name="assets")
app.add_typer(frames_app, name="frames")
app.add_typer(bench.app, name="bench")
app.add_typer(models.app, name="models")
app.add_typer(alerts_cli.app, name="alerts")
app.add_typer(rules_cli.app, name="rules")
app.add_typer(cameras.app, name="cameras")
app.add_typer(dataset_app, name="dataset")
bench.app.command("alerts")(alerts_cli.bench)
app.command()(decode)
app.command()(infer)
app.command()(batch)
app.command()(demo)
app.command()(api)
app.command()(drift)
app.command()(evidence)
bench.app.command("api")(bench_api)


if __name__ == "__main__":
    app()
