"""The test camera itself: several RTSP relays on one machine, as parallel test workers start them."""

from __future__ import annotations

from pathlib import Path

import av
import pytest

from sightline.rtsp_camera import RtspRelay

pytestmark = pytest.mark.infra  # real RTSP cameras


def first_frame_size(url: str) -> tuple[int, int]:
    """Pull one decoded frame over RTSP/UDP, as a decoder would; fail rather than hang."""
    with av.open(url, options={"rtsp_transport": "udp"}, timeout=(10.0, 10.0)) as container:
        frame = next(container.decode(video=0))
        return frame.width, frame.height


def test_two_relays_on_one_machine_both_serve_their_cameras(vtest_path: Path, tmp_path: Path) -> None:
    # rtsp-server-perl takes the UDP ports its pushers send to from a fixed 20000 unless told
    # otherwise, and never retries a failed bind: a second relay's camera then sends nothing.
    # That starved the end-to-end demo of frames when the decoder tests ran beside it.
    with (
        RtspRelay({"cam-a": vtest_path}, log_dir=tmp_path / "a") as first,
        RtspRelay({"cam-b": vtest_path}, log_dir=tmp_path / "b") as second,
    ):
        assert first_frame_size(second.url("cam-b")) == (768, 576)
        assert first_frame_size(first.url("cam-a")) == (768, 576)


def test_a_restarted_relay_serves_again_beside_another(vtest_path: Path, tmp_path: Path) -> None:
    with RtspRelay({"cam-a": vtest_path}, log_dir=tmp_path / "a") as steady:
        restarting = RtspRelay({"cam-b": vtest_path}, log_dir=tmp_path / "b").start()
        try:
            assert first_frame_size(restarting.url("cam-b")) == (768, 576)
            restarting.kill()
            restarting.start()
            assert first_frame_size(restarting.url("cam-b")) == (768, 576)
            assert first_frame_size(steady.url("cam-a")) == (768, 576)
        finally:
            restarting.kill()
