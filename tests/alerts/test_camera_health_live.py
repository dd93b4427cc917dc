"""Camera health end to end on the real broker and Redis: a decoder on a video whose picture
goes black, then the decoder ends; the processor raises `covered`, then `offline` from its own
ticks (nothing is written by the gone decoder), and both reach the webhook receiver signed."""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path

import av
import numpy as np
import pytest
from typer.testing import CliRunner

from alerts.webhooks.receiver import Receiver
from decoders.runner import run_cameras
from decoders.settings import CameraSettings
from schemas.alert import AlertRecord
from schemas.camera_health import CameraHealth
from tests.alerts.helpers import SECRET, Processor, alerts_config, read_topic, wait_for, write_config
from tests.conftest import Stack

FPS = 10


def _video(source: Path, out: Path, good_s: float, black_s: float) -> Path:
    """`good_s` of the sample video, then `black_s` of black (a lens cap), at FPS."""
    with av.open(str(source)) as src, av.open(str(out), "w") as dst:
        stream = dst.add_stream("mpeg4", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 768, 576, "yuv420p"
        frames = src.decode(video=0)
        for i in range(int((good_s + black_s) * FPS)):
            frame = next(frames).reformat(format="yuv420p")
            if i >= good_s * FPS:
                frame = av.VideoFrame.from_ndarray(np.zeros((576, 768, 3), np.uint8), format="rgb24")
                frame = frame.reformat(format="yuv420p")
            frame.pts = None
            dst.mux(stream.encode(frame))
        dst.mux(stream.encode(None))
    return out


@pytest.mark.timeout(240)
def test_a_covered_then_gone_camera_reaches_the_webhook(
    stack: Stack, vtest_path: Path, tmp_path: Path
) -> None:
    camera_id = f"health-{uuid.uuid4().hex[:6]}"
    video = _video(vtest_path, tmp_path / "covered.avi", good_s=3, black_s=6)
    base = stack.fresh_config("health", partitions=2)
    rules = {
        "cameras": [
            {
                "camera": camera_id,
                "camera_health": [{"name": "health", "offline_s": 4, "covered": {"for_s": 2}}],
            }
        ]
    }
    camera = CameraSettings(id=camera_id, url=str(video), health={"every_s": 0.5})
    with Receiver(SECRET) as rx:
        config = alerts_config(base, rules, [{"name": "ops", "url": rx.url, "backoff_initial_s": 0.05}])
        config = config.model_copy(
            update={"alerts": config.alerts.model_copy(update={"health_tick_s": 1.0})}, deep=True
        )
        path = write_config(config, tmp_path / "sightline.yaml")
        decoder = threading.Thread(
            target=run_cameras, args=(config, [camera]), kwargs={"realtime": True, "metrics_port": 0}
        )
        decoder.start()  # before the processor: its first tick comes after the first frame
        proc = Processor(path, tmp_path / "processor.log").start()
        try:
            decoder.join(60)
            assert not decoder.is_alive(), "the 9 s video should have ended"

            def kinds() -> set[str]:
                return {json.loads(d.body)["evidence"]["kind"] for d in rx.deliveries}

            wait_for(lambda: {"covered", "offline"} <= kinds(), 90, "covered and offline alerts", proc)
        finally:
            proc.stop()
        got = {a.evidence["kind"]: a for a in (AlertRecord.decode(d.body) for d in rx.deliveries)}
        assert all(d.verified for d in rx.deliveries)
        assert set(got) == {"covered", "offline"}, "a black picture is only covered, never moved"

    covered, offline = got["covered"], got["offline"]
    assert covered.type == offline.type == "camera_health" and covered.rules_version == 0
    assert covered.evidence["brightness"] < 12 and isinstance(covered.evidence["seq"], int)
    assert offline.severity == "critical" and offline.evidence["noticed_by"] == "tick"
    last_frame = offline.evidence["last_frame_ns"]
    assert last_frame is not None and offline.capture_ns - last_frame >= 4e9
    assert covered.window.start_ns < last_frame, "covered came while the decoder still ran"

    # The decoder's records: statistics every 0.5 s with a reference taken from a good frame,
    # and its `offline` record at the end of the file; the processor's ticks in the same topic.
    records = [CameraHealth.decode(v) for _, v in read_topic(config, config.topics.camera_health.name)]
    mine = [r for r in records if r.camera_id == camera_id]
    stats = [r for r in mine if r.kind == "stats"]
    assert 14 <= len(stats) <= 20
    assert stats[0].similarity == 1.0 and stats[0].reference_id is not None
    assert {r.kind for r in mine} == {"stats", "offline", "tick"}

    # The reference the decoder took is in Redis; `sightline cameras reference` shows and clears it.
    from sightline.cli import app

    cli = CliRunner()
    shown = cli.invoke(app, ["--config", str(path), "cameras", "reference", camera_id, "--show", "--json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output.strip().splitlines()[-1])["reference_id"] == stats[0].reference_id
    cleared = cli.invoke(app, ["--config", str(path), "cameras", "reference", camera_id, "--json"])
    assert json.loads(cleared.output.strip().splitlines()[-1])["action"] == "cleared"
