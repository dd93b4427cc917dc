"""Decoders against the real broker, Redis, sample media and an RTSP camera."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import av
import pytest
import simplejpeg

from decoders.encode import encode_jpeg
from decoders.pipeline import EncodeAhead
from decoders.runner import run_cameras
from inference.frames import validate_frame_record
from schemas.camera_event import CameraEvent
from sightline.config import CameraSettings
from sightline.rtsp_camera import RtspRelay
from tests.conftest import Stack
from tests.helpers import read_topic


def _frame_count(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_vtest_at_native_fps_puts_every_frame_on_kafka_in_order(stack: Stack, vtest_path: Path) -> None:
    config = stack.fresh_config("vtest")
    expected = _frame_count(vtest_path)
    assert expected == 795
    camera = CameraSettings(id="cam-vtest", url=str(vtest_path), fps=10)
    stats = run_cameras(config, [camera], metrics_port=0)
    assert stats["cam-vtest"].error is None

    records = read_topic(config, config.topics.frames.name, expected=expected)
    assert len(records) == expected
    assert len({r.partition() for r in records}) == 1, "one camera's frames share one partition (key)"
    metas = [validate_frame_record(r.key(), r.value(), r.headers()) for r in records]
    assert [m.seq for m in metas] == list(range(expected))
    capture = [m.capture_ns for m in metas]
    assert capture == sorted(capture)
    assert capture[10] - capture[0] == pytest.approx(1e9, rel=1e-3), (
        "capture time follows the 10 fps timestamps"
    )
    for record, meta in zip(records[::50], metas[::50], strict=True):
        assert (meta.width, meta.height, meta.encoding) == (768, 576, "jpeg")
        height, width, *_ = simplejpeg.decode_jpeg_header(record.value())
        assert (width, height) == (768, 576)


def test_fps_sampling_resize_and_claim_check(stack: Stack, vtest_path: Path) -> None:
    config = stack.fresh_config("sample")
    config.frames.inline_max_bytes = 20_000  # force most frames through Redis
    camera = CameraSettings(id="cam-small", url=str(vtest_path), fps=2.5, resize=(384, 288), jpeg_quality=95)
    run_cameras(config, [camera], metrics_port=0)
    records = read_topic(config, config.topics.frames.name, expected=199)
    assert len(records) == 199  # 795 frames at 10 fps sampled to 2.5 fps: every 4th, 0..792
    from streams.claimcheck import ClaimCheckStore

    store = ClaimCheckStore(config.redis.url, 60)
    claimed = 0
    for record in records:
        meta = validate_frame_record(record.key(), record.value(), record.headers())
        assert (meta.width, meta.height) == (384, 288)
        if meta.claim_check:
            claimed += 1
            image = store.get(meta.claim_check)
            assert simplejpeg.decode_jpeg_header(image)[:2] == (288, 384)
    assert claimed > 0


def test_keyframes_only_keeps_only_keyframes(stack: Stack, tmp_path: Path) -> None:
    from sightline.assets import media_path

    config = stack.fresh_config("keys")
    path = media_path("bikes.mp4")
    with av.open(str(path)) as container:
        keyframes = sum(1 for f in container.decode(video=0) if f.key_frame)
    run_cameras(config, [CameraSettings(id="bikes", url=str(path), keyframes_only=True)], metrics_port=0)
    records = read_topic(config, config.topics.frames.name, expected=keyframes)
    assert len(records) == keyframes < 50


def test_rtsp_camera_reconnects_after_server_restart(stack: Stack, vtest_path: Path, tmp_path: Path) -> None:
    config = stack.fresh_config("rtsp")
    rtsp = RtspRelay({"cam1": vtest_path}, log_dir=tmp_path)
    rtsp.start()
    camera = CameraSettings(
        id="rtsp-cam", url=rtsp.url("cam1"), rtsp_transport="udp", stall_timeout_s=3,
        reconnect_initial_s=0.5, reconnect_max_s=2,
    )  # fmt: skip
    stop = threading.Event()
    result: dict = {}
    thread = threading.Thread(
        target=lambda: result.update(run_cameras(config, [camera], stop, metrics_port=0))
    )
    thread.start()
    try:
        first = read_topic(config, config.topics.frames.name, expected=20, max_wait=30)
        assert len(first) >= 20, "frames arrive from the RTSP camera"
        rtsp.kill()
        time.sleep(5)  # longer than the stall timeout: the decoder notices the camera is gone
        rtsp.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            events = [
                CameraEvent.decode(m.value()) for m in read_topic(config, config.topics.camera_events.name)
            ]
            kinds = [e.event for e in events]
            if kinds.count("online") >= 2:
                break
            time.sleep(1)
        assert kinds[0] == "online" and "offline" in kinds and kinds.count("online") >= 2, kinds
        assert kinds.index("offline") < len(kinds) - 1 - kinds[::-1].index("online")
        before = len(read_topic(config, config.topics.frames.name))
        time.sleep(3)
        after = read_topic(config, config.topics.frames.name)
        assert len(after) > before, "frames flow again after the reconnect"
        seqs = [validate_frame_record(m.key(), m.value(), m.headers()).seq for m in after]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    finally:
        stop.set()
        thread.join(30)
        rtsp.kill()
    assert result["rtsp-cam"].reconnects >= 1


def test_bad_sources_give_clear_errors_and_spare_other_cameras(
    stack: Stack, vtest_path: Path, tmp_path: Path
) -> None:
    config = stack.fresh_config("bad")
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00\x01not a video" * 1000)
    cameras = [
        CameraSettings(id="missing", url=str(tmp_path / "nope.avi")),
        CameraSettings(id="garbage", url=str(garbage)),
        CameraSettings(id="good", url=str(vtest_path), fps=1),
    ]
    stats = run_cameras(config, cameras, metrics_port=0)
    assert "does not exist" in (stats["missing"].error or "")
    assert "cannot open" in (stats["garbage"].error or "")
    assert stats["good"].error is None and stats["good"].sent == 80
    events = [CameraEvent.decode(m.value()) for m in read_topic(config, config.topics.camera_events.name)]
    errors = {e.camera_id: e.reason for e in events if e.event == "error"}
    assert set(errors) == {"missing", "garbage"}


def test_unreachable_live_source_keeps_retrying_until_stopped(stack: Stack) -> None:
    config = stack.fresh_config("unreach")
    from streams.devinfra import free_port

    camera = CameraSettings(
        id="nowhere", url=f"rtsp://127.0.0.1:{free_port()}/x", stall_timeout_s=1,
        reconnect_initial_s=0.2, reconnect_max_s=0.5,
    )  # fmt: skip
    stop = threading.Event()
    threading.Timer(4, stop.set).start()
    stats = run_cameras(config, [camera], stop, metrics_port=0)
    assert stats["nowhere"].reconnects >= 2
    events = [CameraEvent.decode(m.value()) for m in read_topic(config, config.topics.camera_events.name)]
    offline = [e for e in events if e.event == "offline" and e.reason and "cannot open" in e.reason]
    assert offline, "each failed attempt is reported with its reason"


def test_encode_ahead_gives_the_serial_jpegs_in_order_stops_early_and_raises_decoder_errors(
    vtest_path: Path,
) -> None:
    with av.open(str(vtest_path)) as container:
        frames = [f for _, f in zip(range(40), container.decode(video=0), strict=False)]
    kept = [f for f in frames if f.time is not None and round(f.time * 10) % 3 == 0]
    serial = [encode_jpeg(f, 80, (384, 288)) for f in kept]
    decoded: list[int] = []
    ahead = EncodeAhead(
        iter(frames), 80, (384, 288),
        keep=lambda t: round(t * 10) % 3 == 0, on_decoded=lambda: decoded.append(1), depth=2,
    )  # fmt: skip
    with ahead:
        got = list(ahead)
    assert [(f.jpeg, f.width, f.height) for f in got] == serial, "same bytes, same order as serial"
    assert [f.t for f in got] == [f.time for f in kept]
    assert len(decoded) == 40 and ahead.last_t == frames[-1].time

    with av.open(str(vtest_path)) as container:  # a consumer that leaves early: the thread ends
        early = EncodeAhead(container.decode(video=0), 80, depth=2)
        with early:
            assert [f.t for _, f in zip(range(3), early, strict=False)] == [0.0, 0.1, 0.2]
        assert not early._thread.is_alive(), "joined before the container closes"

    def broken() -> Iterator[av.VideoFrame]:
        yield frames[0]
        raise av.error.InvalidDataError(1094995529, "Invalid data found when processing input")

    with EncodeAhead(broken(), 80) as failing, pytest.raises(av.error.InvalidDataError):
        for _ in failing:
            pass
