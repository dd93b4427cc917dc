"""`sightline dataset export`: the reviewed alerts' key frames as a YOLO or COCO dataset."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from pathlib import Path

import typer

app = typer.Typer(help="Training data from the alerts and their review verdicts.", no_args_is_help=True)

RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_time(text: str, now: float | None = None) -> int:
    """Nanoseconds since the epoch from `30m`/`2h`/`7d` (ago), Unix seconds, or ISO 8601 (UTC
    unless it names a zone)."""
    text = text.strip()
    now = time.time() if now is None else now
    if match := RELATIVE.match(text):
        return int((now - float(match[1]) * UNIT_S[match[2]]) * 1e9)
    try:
        return int(float(text) * 1e9)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r}: give e.g. 2h, 7d, 1765000000 or 2026-12-07T10:00") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1e9)


@app.command("export")
def export(
    since: str = typer.Option(..., help="Alerts created since: 2h, 7d, Unix seconds or ISO 8601 (UTC)."),
    out: Path = typer.Option(..., help="Folder to write; must be new or empty."),
    fmt: str = typer.Option("yolo", "--format", help="yolo or coco."),
    until: str | None = typer.Option(None, help="Alerts created until (same forms as --since)."),
) -> None:
    """Each alert's key frame with the model's detections as labels, one split per verdict
    (confirmed, false_positive, unreviewed); see docs/evidence.md."""
    from sightline.commands.common import config
    from sightline.dataset.keyframes import key_frames
    from sightline.dataset.writer import write_dataset
    from sightline.review.feedback import read_verdicts

    if fmt not in ("yolo", "coco"):
        raise typer.BadParameter("--format is yolo or coco")
    if out.exists() and any(out.iterdir()):
        typer.echo(f"dataset export: {out} is not empty; export into a new folder", err=True)
        raise typer.Exit(2)
    cfg = config()
    since_ns = parse_time(since)
    until_ns = parse_time(until) if until else None
    verdicts = read_verdicts(cfg.kafka, cfg.topics.feedback.name)
    report = write_dataset(out, key_frames(cfg, since_ns, until_ns), verdicts, fmt)  # type: ignore[arg-type]
    for item in report.left_out:
        typer.echo(f"left out alert {item['alert_id']}: {item['reason']}", err=True)
    counts = " ".join(f"{split}={n}" for split, n in report.images.items())
    typer.echo(f"wrote {out} ({fmt}): {counts} left_out={len(report.left_out)}")
