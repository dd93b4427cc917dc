"""`sightline alerts ...` (run, resend-dead-letters, test-rules) and `sightline bench alerts`.

`replay` and `replay-rules` are the old names of `resend-dead-letters` and `test-rules`: two
unrelated jobs both called "replay". They still work, hidden, with a notice on stderr.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, ParamSpec

import typer

from sightline.config import ConfigError, SightlineConfig, load_config

if TYPE_CHECKING:
    from alerts.settings import RulesSettings

app = typer.Typer(
    help="Alert processors: rules over detections, webhooks, dead letters.", no_args_is_help=False
)
P = ParamSpec("P")

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="Sightline YAML config (default: $SIGHTLINE_CONFIG).")
]


def _config(path: Path | None) -> SightlineConfig:
    """--config here, else `sightline --config ...`, else $SIGHTLINE_CONFIG, else defaults."""
    if path is None:
        from sightline.commands.common import config as shared_config

        return shared_config()
    try:
        return load_config(path)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None


def _logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@app.callback(invoke_without_command=True)
def main(ctx: typer.Context, config: ConfigOpt = None) -> None:
    """With no command, runs the processors (same as `run`)."""
    if config is not None:
        from sightline.commands.common import set_config_path

        set_config_path(str(config))  # `alerts -c FILE test-rules` works like `test-rules -c FILE`
    if ctx.invoked_subcommand is None:
        run(config=config)


@app.command()
def run(
    config: ConfigOpt = None,
    loglevel: Annotated[str, typer.Option(help="Log level.")] = "warning",
) -> None:
    """Run the faust app: rules on the detections topic, webhooks from the alerts topic."""
    from alerts.app import run as run_app
    from alerts.metrics import HEALTH
    from alerts.rules.loader import rules_for
    from sightline.commands.common import serve_stage_health
    from streams.topics import ensure_topics

    _logging(loglevel)
    cfg = _config(config)
    try:
        rules = rules_for(cfg.alerts)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    if not rules.cameras:
        typer.echo(
            "note: no alert rules in the configuration; the processors apply saved rules versions "
            "if there are any (`sightline rules list`), else only webhook delivery runs",
            err=True,
        )
    for hook in cfg.alerts.webhooks:
        try:
            hook.secret_value()
        except ValueError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
    ensure_topics(cfg)
    if cfg.metrics.alerts_port:  # /metrics, /readyz (Kafka, Redis) and /healthz (the agent loop)
        serve_stage_health(cfg, HEALTH, cfg.metrics.alerts_port, "metrics.alerts_port", "alerts-http")
    run_app(cfg, rules, loglevel=loglevel)


@app.command("resend-dead-letters")
def resend_dead_letters(
    config: ConfigOpt = None,
    endpoint: Annotated[str | None, typer.Option(help="Only alerts dead-lettered for this endpoint.")] = None,
    from_beginning: Annotated[bool, typer.Option(help="Ignore progress of earlier replays.")] = False,
    dry_run: Annotated[bool, typer.Option(help="Only count what would be re-sent.")] = False,
) -> None:
    """Re-send dead-lettered alerts to the endpoints that refused them (deduplicated)."""
    from alerts.webhooks.replay import replay as resend

    _logging("warning")
    cfg = _config(config)
    report = asyncio.run(resend(cfg, endpoint=endpoint, from_beginning=from_beginning, dry_run=dry_run))
    typer.echo(json.dumps(report.as_dict(), sort_keys=True))
    if report.outcomes.get("dead"):
        raise typer.Exit(1)


@app.command("test-rules")
def test_rules(
    source: Annotated[
        str,
        typer.Option(
            "--from", help="JSONL file of DetectionsRecord values, or TOPIC[:PARTITION[:FIRST-LAST]]."
        ),
    ],
    rules: Annotated[
        str, typer.Option("--rules", help="Rules YAML file to test, or a saved version (v3; v0: the file).")
    ],
    config: ConfigOpt = None,
    pos: Annotated[Path | None, typer.Option("--pos", help="JSONL file of POS events to merge in.")] = None,
    health: Annotated[
        str | None,
        typer.Option("--health", help="Camera-health records: JSONL file or TOPIC[:PARTITION[:FIRST-LAST]]."),
    ] = None,
    flush: Annotated[bool, typer.Option(help="Close open windows/sessions at the end of input.")] = True,
    switch: Annotated[
        list[str] | None,
        typer.Option(
            "--switch",
            help="RULES@[PARTITION:]OFFSET: from that record on, other rules (a file or vN), as the "
            "processors switch to a saved version; repeatable, in order. Files: OFFSET counts records.",
        ),
    ] = None,
) -> None:
    """Print (JSONL) the alerts a rules file raises on recorded detections; deterministic."""
    from alerts.replay_rules import Switch, evaluate, open_source, parse_point, print_alerts, read_pos

    cfg = _config(config)
    rules_settings, version = _rules_spec(rules, cfg)
    switches = []
    for spec in switch or []:
        what, sep, where = spec.rpartition("@")
        if not sep or not what:
            typer.echo(f"error: --switch {spec!r}: expected RULES@[PARTITION:]OFFSET", err=True)
            raise typer.Exit(2)
        try:
            partition, offset = parse_point(where)
        except ValueError as exc:
            typer.echo(f"error: --switch: {exc}", err=True)
            raise typer.Exit(2) from None
        switch_rules, switch_version = _rules_spec(what, cfg)
        switches.append(Switch(switch_rules, switch_version, offset, partition))
    errors: list[str] = []
    try:
        records = open_source(source, cfg.kafka, errors)
        health_records = None
        if health:
            from alerts.replay_health import read_health

            health_records = read_health(health, cfg.kafka, errors)
        alerts = evaluate(
            rules_settings,
            records,
            read_pos(pos) if pos else None,
            flush=flush,
            version=version,
            switches=switches,
            health=health_records,
        )
    except (ValueError, TimeoutError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    print_alerts(alerts)
    for line in errors[:20]:
        typer.echo(f"skipped invalid record: {line}", err=True)
    typer.echo(f"{len(alerts)} alert(s); {len(errors)} invalid record(s) skipped", err=True)


def _rules_spec(spec: str, cfg: SightlineConfig) -> tuple[RulesSettings, int]:
    """A rules file (labelled version 0, as before any version is saved) or `vN`, a saved
    version read from the rules topic (`v0`: the configured rules file)."""
    from alerts.rules.loader import load_rules, rules_for
    from alerts.rules_store import read_catalog

    m = re.match(r"^v(\d+)$", spec)
    try:
        if m is None or Path(spec).is_file():
            return load_rules(spec), 0
        catalog, _ = read_catalog(cfg.kafka, cfg.topics.rules.name)
        version = int(m[1])
        return catalog.rules(version, rules_for(cfg.alerts)), version
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    except KeyError as exc:
        typer.echo(f"error: {exc.args[0]}", err=True)
        raise typer.Exit(2) from None


def _old_name(old: str, new: str, command: Callable[P, None]) -> Callable[P, None]:
    """`command` under its old name: same options, plus a one-line notice on stderr."""

    @functools.wraps(command)
    def alias(*args: P.args, **kwargs: P.kwargs) -> None:
        typer.echo(f"note: `sightline alerts {old}` is deprecated; use `sightline alerts {new}`", err=True)
        command(*args, **kwargs)

    return alias


app.command("replay", hidden=True)(_old_name("replay", "resend-dead-letters", resend_dead_letters))
app.command("replay-rules", hidden=True)(_old_name("replay-rules", "test-rules", test_rules))


def bench(
    config: ConfigOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Only the JSON line on stdout.")] = False,
    records: Annotated[int, typer.Option(help="Detections records in the throughput phase.")] = 30_000,
    cameras: Annotated[int, typer.Option(help="Synthetic cameras.")] = 8,
    rate: Annotated[float, typer.Option(help="Latency-phase records/s (0: 30% of the throughput).")] = 0.0,
    latency_seconds: Annotated[float, typer.Option(help="Length of the latency phase.")] = 30.0,
    private_stack: Annotated[
        bool, typer.Option(help="Start a throw-away Kafka + Redis instead of the configured dev stack.")
    ] = False,
    processors: Annotated[
        int, typer.Option(min=1, help="Processors sharing the partitions; the others start mid-run.")
    ] = 1,
    profile: Annotated[
        Path | None,
        typer.Option(help="pyinstrument profile of the first processor (.txt, .html, .pyisession)."),
    ] = None,
) -> None:
    """Alert processors: sustained records/s and boxes/s, capture-to-webhook p99, lost and duplicates."""
    from sightline.bench.alerts import BenchOptions, run_bench
    from sightline.commands.common import print_json_line

    _logging("warning")
    cfg = _config(config)
    options = BenchOptions(
        records=records,
        cameras=cameras,
        rate=rate,
        latency_s=latency_seconds,
        processors=processors,
        profile=profile.resolve() if profile is not None else None,
    )
    result = run_bench(cfg, options, private_stack=private_stack, log=lambda m: print(m, file=sys.stderr))
    if not as_json:
        for key, value in result.items():
            typer.echo(f"{key}: {value}", err=True)
    print_json_line(result)
    if result.get("lost") or result.get("duplicates"):
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
