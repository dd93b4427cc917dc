"""`sightline dev`: the local Kafka broker and Redis server."""

from __future__ import annotations

import json

import typer

from sightline.commands.common import config, fail
from streams.devinfra import DevStack, DevStackError
from streams.kafka_dist import KafkaDistError, kafka_libs
from streams.topics import ensure_topics

app = typer.Typer(
    help="Run Apache Kafka (KRaft: one node, or three) and Redis on 127.0.0.1.", no_args_is_help=True
)


def _print(stack: DevStack, as_json: bool) -> None:
    statuses = stack.status_dicts()
    if as_json:
        typer.echo(json.dumps(statuses, indent=2))
        return
    for s in statuses:
        state = "running" if s["running"] else "stopped"
        typer.echo(f"{s['name']:9} {state:8} pid={s['pid']} {s['address']}  log: {s['log_file']}")


@app.command()
def up(
    brokers: int | None = typer.Option(
        None, min=1, help="Kafka nodes on first start: 3 gives replication 3, min.insync.replicas 2."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print status as JSON."),
) -> None:
    """Start Kafka and Redis (formatting Kafka storage on first start) and create the topics."""
    cfg = config()
    stack = DevStack(cfg.dev, brokers=brokers)
    try:
        stack.up()
        for report in ensure_topics(cfg):
            if report.created:
                typer.echo(f"created topic {report.name} ({report.partitions} partitions)", err=True)
            elif report.warning:
                typer.echo(f"topic {report.name} {report.warning}", err=True)
    except (DevStackError, KafkaDistError) as exc:
        fail(str(exc))
    _print(stack, as_json)


@app.command()
def down() -> None:
    """Stop Kafka (every node) and Redis (data is kept)."""
    DevStack(config().dev).down()
    typer.echo("stopped")


@app.command()
def status(as_json: bool = typer.Option(False, "--json", help="Print status as JSON.")) -> None:
    """Report whether each Kafka node and Redis run, their addresses and log files."""
    _print(DevStack(config().dev), as_json)


@app.command()
def fetch() -> None:
    """Resolve the Kafka broker jars from Maven Central into the cache (done once)."""
    cfg = config()
    try:
        typer.echo(f"kafka jars: {kafka_libs(cfg.dev.kafka_version, cfg.dev.log4j_version)}", err=True)
    except KafkaDistError as exc:
        fail(str(exc))


topics_app = typer.Typer(help="Kafka topics.", no_args_is_help=True)


@topics_app.command("create")
def create_topics() -> None:
    """Create the configured topics, or check the existing ones (partitions, retention)."""
    for report in ensure_topics(config()):
        state = "created" if report.created else "exists"
        typer.echo(
            f"{report.name}: {state}, {report.partitions} partitions"
            + (f" ({report.warning})" if report.warning else "")
        )
