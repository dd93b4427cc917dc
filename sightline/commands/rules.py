"""`sightline rules`: saved versions of the alert rules (list, show, diff, apply, rollback, try).

Versions live on the compacted rules topic (`alerts/rules_store.py`); the processors switch to a
new one without a restart. The rules file stays the source for teams that keep rules in git:
`rules apply FILE` saves it as the next version. docs/rules.md has the whole story.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import re
import socket
from pathlib import Path
from typing import Annotated, Any

import typer

from sightline.commands.common import config, fail

app = typer.Typer(help="Alert rules versions: list, show, diff, apply, rollback, try.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="JSON on stdout.")]
VERSION = re.compile(r"^v?(\d+)$")


def _store():  # noqa: ANN202 - imported lazily so `sightline --help` stays fast
    from alerts.rules.loader import rules_for
    from alerts.rules_store import RulesStore
    from sightline.config import ConfigError

    cfg = config()
    try:
        fallback = rules_for(cfg.alerts)
    except ConfigError as exc:
        fail(str(exc), 2)
    return RulesStore(cfg.kafka, cfg.topics.rules.name, fallback)


def default_author() -> str:
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in some containers
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _when(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _document(spec: str, store: Any, catalog: Any) -> tuple[str, dict[str, Any]]:
    """A version number (`3`, `v3`; 0 is the rules file) or a rules file, as (name, document)."""
    from alerts.rules.loader import load_rules
    from alerts.versions import document_of
    from sightline.config import ConfigError

    m = VERSION.match(spec)
    if m is not None and not Path(spec).is_file():
        version = int(m[1])
        try:
            return f"version {version}", document_of(catalog.rules(version, store.fallback))
        except KeyError as exc:
            fail(str(exc.args[0]), 2)
    try:
        return spec, document_of(load_rules(spec))
    except ConfigError as exc:
        fail(str(exc), 2)


@app.command("list")
def list_versions(as_json: JsonOpt = False) -> None:
    """Every saved version, newest last; the highest is in force."""
    store = _store()
    catalog = store.catalog()
    rows = [
        {
            "version": r.version,
            "created": _when(r.created_ns),
            "author": r.author,
            "comment": r.comment,
            "copied_from": r.copied_from,
            "in_force": r.version == catalog.latest,
        }
        for r in catalog.history()
    ]
    if as_json:
        typer.echo(json.dumps({"in_force": catalog.latest, "versions": rows}, indent=2))
        return
    if not rows:
        typer.echo("no version saved yet: the rules file (version 0) is in force")
        return
    for row in rows:
        mark = "*" if row["in_force"] else " "
        copied = f" (copy of {row['copied_from']})" if row["copied_from"] is not None else ""
        typer.echo(f"{mark} {row['version']:>4}  {row['created']}  {row['author']}  {row['comment']}{copied}")


@app.command()
def show(
    version: Annotated[
        str | None, typer.Argument(help="Version (default: the one in force; 0: the file).")
    ] = None,
    camera: Annotated[str | None, typer.Option(help="Only this camera's rules.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """A version's rules document, as YAML (a rules file) or JSON."""
    from alerts.versions import to_yaml

    store = _store()
    catalog = store.catalog()
    _, document = _document(str(catalog.latest if version is None else version), store, catalog)
    if camera is not None:
        document = {**document, "cameras": [c for c in document["cameras"] if c["camera"] == camera]}
        if not document["cameras"]:
            fail(f"no rules for camera {camera!r} in that version", 2)
    typer.echo(json.dumps(document, indent=2) if as_json else to_yaml(document), nl=as_json)


@app.command()
def diff(
    old: Annotated[
        str | None, typer.Argument(help="Version or rules file (default: the one before NEW).")
    ] = None,
    new: Annotated[
        str | None, typer.Argument(help="Version or rules file (default: the one in force).")
    ] = None,
) -> None:
    """A unified diff of two versions (or a version and a file); exit 1 when they differ."""
    from alerts.versions import changed_rules, unified_diff, validate_document

    store = _store()
    catalog = store.catalog()
    if new is None:
        new = str(catalog.latest)
    if old is None:
        m = VERSION.match(new)
        old = str(max((v for v in catalog.versions if m and v < int(m[1])), default=0))
    old_name, old_doc = _document(old, store, catalog)
    new_name, new_doc = _document(new, store, catalog)
    text = unified_diff(old_doc, new_doc, old_name, new_name)
    if not text:
        typer.echo(f"{old_name} and {new_name} are the same")
        return
    typer.echo(text, nl=False)
    for camera, change in changed_rules(validate_document(old_doc), validate_document(new_doc)).items():
        fresh = change["added"] + change["changed"]
        if fresh or change["removed"]:
            typer.echo(
                f"# {camera}: state starts fresh for {', '.join(fresh) or 'none'}; kept for "
                f"{', '.join(change['kept']) or 'none'}; removed {', '.join(change['removed']) or 'none'}"
            )
    raise typer.Exit(1)


@app.command()
def apply(
    file: Annotated[Path, typer.Argument(help="Rules YAML file.")],
    comment: Annotated[str, typer.Option("--comment", "-m", help="Why (shown in the history).")] = "",
    author: Annotated[str | None, typer.Option(help="Who (default: user@host).")] = None,
    dry_run: Annotated[bool, typer.Option(help="Only validate and show the diff.")] = False,
) -> None:
    """Save FILE as the next version; the alert processors switch to it without a restart."""
    from alerts.rules.loader import load_rules
    from alerts.rules_store import VersionConflict
    from alerts.versions import document_of, unified_diff
    from sightline.config import ConfigError

    try:
        rules = load_rules(file)
    except ConfigError as exc:
        fail(str(exc), 2)
    store = _store()
    catalog = store.catalog()
    current = document_of(catalog.rules(catalog.latest, store.fallback))
    text = unified_diff(current, document_of(rules), f"version {catalog.latest}", str(file))
    if not text:
        typer.echo(f"{file} is what version {catalog.latest} holds; nothing saved")
        return
    typer.echo(text, nl=False, err=True)
    if dry_run:
        typer.echo(f"valid; would be version {catalog.latest + 1} (dry run, nothing saved)")
        return
    try:
        record = store.save(rules, author or default_author(), comment or f"apply {file.name}")
    except VersionConflict as exc:
        fail(str(exc))
    typer.echo(f"version {record.version} saved and in force")


@app.command()
def rollback(
    to: Annotated[
        int | None, typer.Option(help="Version to return to (default: the one before; 0: the file).")
    ] = None,
    comment: Annotated[str, typer.Option("--comment", "-m")] = "",
    author: Annotated[str | None, typer.Option(help="Who (default: user@host).")] = None,
) -> None:
    """Put an older version back in force, saved again as the next version."""
    from alerts.rules_store import VersionConflict

    store = _store()
    try:
        record = store.rollback(author or default_author(), to, comment)
    except KeyError as exc:
        fail(str(exc.args[0]), 2)
    except (ValueError, VersionConflict) as exc:
        fail(str(exc))
    typer.echo(f"version {record.version} saved and in force (the rules of version {record.copied_from})")


@app.command("try")
def try_draft(
    file: Annotated[Path, typer.Argument(help="Draft rules YAML file.")],
    camera: Annotated[str, typer.Option(help="Camera whose recent detections to use.")],
    minutes: Annotated[float, typer.Option(help="How far back to read the detections topic.")] = 60.0,
    flush: Annotated[bool, typer.Option(help="Close open windows and sessions at the end.")] = True,
    as_json: JsonOpt = False,
) -> None:
    """What would FILE have raised on CAMERA's last MINUTES of detections, beside the live rules."""
    from alerts.rules.loader import load_rules
    from alerts.try_rules import try_rules
    from sightline.config import ConfigError

    try:
        draft = load_rules(file)
    except ConfigError as exc:
        fail(str(exc), 2)
    store = _store()
    catalog = store.catalog()
    live_version, live = catalog.in_force(store.fallback)
    cfg = config()
    try:
        result = try_rules(
            cfg.kafka, cfg.topics.detections.name, camera, draft, live, live_version, minutes, flush
        )
    except (ValueError, TimeoutError) as exc:
        fail(str(exc), 2)
    if as_json:
        typer.echo(json.dumps(result.as_dict(), indent=2))
        return
    typer.echo(f"camera {camera}: {result.records} record(s) of the last {minutes:g} min")
    for name, alerts in (("draft", result.draft), (f"live (version {live_version})", result.live)):
        typer.echo(f"{name}: {len(alerts)} alert(s)")
        for a in alerts:
            typer.echo(f"  {_when(a.capture_ns)}  {a.type:<9} {a.rule:<16} {a.summary}")
