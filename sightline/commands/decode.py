"""`sightline decode` and `sightline frames`: cameras onto Kafka, and a look at what arrived."""

from __future__ import annotations

import json
import time
from itertools import islice

import typer
from confluent_kafka import KafkaException

from decoders.runner import run_cameras
from inference.frames import validate_frame_record
from schemas.errors import ContractError
from sightline.commands.common import config, fail, serve_stage_health
from sightline.config import CameraSettings, SightlineConfig
from streams.health import Health
from streams.kafka import make_consumer
from streams.retry import call_with_retry
from streams.topic_reader import TopicReadError, read_topic
from streams.topics import ensure_topics


def decode(
    source: str | None = typer.Option(
        None, "--source", help="One source URL or file instead of the config's."
    ),
    camera: str | None = typer.Option(
        None, "--camera", help="Camera id for --source, or one camera of the config."
    ),
    fps: float | None = typer.Option(None, help="Target fps for --source."),
    loop: bool = typer.Option(False, help="Loop a file --source."),
    rtsp_transport: str = typer.Option("tcp", help="udp or tcp, for an RTSP --source."),
    max_frames: int | None = typer.Option(None, help="Stop each camera after this many frames."),
    realtime: bool = typer.Option(False, help="Pace file sources at their frame rate, like a live camera."),
    rewind: bool = typer.Option(
        False, help="Publish file sources from their start again (seq numbering still continues)."
    ),
) -> None:
    """Decode cameras with PyAV and publish JPEG frame records to the frames topic.

    A restarted decoder carries on after each camera's last frame on the topic: seq numbers
    never repeat, and a file source resumes where it stopped.
    """
    cfg = config()
    cameras = _select_cameras(cfg, source, camera, fps, loop, rtsp_transport)
    health = Health("decoder")
    # Served from the start: probes see "not ready" (not "dead") while Kafka is still away.
    if cfg.metrics.decoder_port:
        serve_stage_health(cfg, health, cfg.metrics.decoder_port, "metrics.decoder_port", "decoder-http")
    # Started while Kafka is away (a supervisor restarting it mid-outage): wait for the broker.
    call_with_retry(lambda: ensure_topics(cfg), health=health, dependency="kafka", retry_on=(KafkaException,))
    stats = run_cameras(
        cfg, cameras, max_frames=max_frames, realtime=realtime, rewind=rewind, metrics_port=0, health=health
    )
    for cam_id, s in stats.items():
        line = f"{cam_id}: decoded={s.decoded} sent={s.sent} reconnects={s.reconnects}"
        typer.echo(line + (f" error={s.error}" if s.error else ""), err=True)
    if all(s.error for s in stats.values()):
        raise typer.Exit(1)


def _select_cameras(
    cfg: SightlineConfig,
    source: str | None,
    camera: str | None,
    fps: float | None,
    loop: bool,
    transport: str,
) -> list[CameraSettings]:
    if source:
        if not camera:
            fail("--source needs --camera ID")
        try:
            return [CameraSettings(id=camera, url=source, fps=fps, loop=loop, rtsp_transport=transport)]
        except ValueError as exc:
            fail(f"bad --source/--camera: {exc}")
    if camera:
        try:
            return [cfg.camera(camera)]
        except KeyError:
            fail(f"camera {camera!r} is not in the configuration")
    if not cfg.cameras:
        fail("no cameras configured; pass --source URL --camera ID or add `cameras:` to the config")
    return cfg.cameras


frames_app = typer.Typer(help="Inspect frame records on Kafka.", no_args_is_help=True)


@frames_app.command("tail")
def tail(
    limit: int = typer.Option(20, help="Show at most this many records."),
    timeout: float = typer.Option(5.0, help="Give up after this many seconds without a record."),
) -> None:
    """Read the frames topic from the start, validate each record and print a summary line."""
    cfg = config()
    consumer = make_consumer(cfg.kafka, f"sightline-frames-tail-{time.time_ns()}")
    seen = 0
    try:
        for msg in islice(read_topic(consumer, cfg.topics.frames.name, timeout_s=timeout), limit):
            seen += 1
            try:
                meta = validate_frame_record(
                    msg.key(), msg.value(), msg.headers(), cfg.frames.max_frame_bytes
                )
                summary = {
                    "camera": meta.camera_id,
                    "seq": meta.seq,
                    "size": f"{meta.width}x{meta.height}",
                    "bytes": len(msg.value() or b""),
                    "claim_check": meta.claim_check,
                }
            except ContractError as exc:
                summary = {"invalid": exc.reason}
            typer.echo(json.dumps({"partition": msg.partition(), "offset": msg.offset(), **summary}))
    except TopicReadError as exc:
        fail(str(exc))
    finally:
        consumer.close()
    typer.echo(f"{seen} frame records shown", err=True)
