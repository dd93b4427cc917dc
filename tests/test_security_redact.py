"""Camera URL redaction: credentials never leave the decoder, everything else stays as it was."""

from __future__ import annotations

import logging
import threading

import pytest

from decoders.runner import run_cameras
from schemas.camera_event import CameraEvent
from sightline.api.tail import TailState
from sightline.config import CameraSettings, SightlineConfig
from streams.devinfra import free_port
from streams.redact import is_secret_param, redact_text, redact_url
from tests.conftest import Stack
from tests.helpers import read_topic


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("rtsp://admin:s3cret@10.0.0.5:554/Streaming/101", "rtsp://***@10.0.0.5:554/Streaming/101"),
        ("rtsp://admin@cam.local/live", "rtsp://***@cam.local/live"),
        # '@' and ':' inside an (unencoded) password: the host is what follows the last '@'.
        ("rtsp://u:p@ss:w@rd@cam:8554/a", "rtsp://***@cam:8554/a"),
        ("rtsp://u:p%40ss@[fe80::1]:554/s", "rtsp://***@[fe80::1]:554/s"),
        (
            "https://cdn.example/cam.m3u8?channel=1&token=abc.def&subtype=0",
            "https://cdn.example/cam.m3u8?channel=1&token=***&subtype=0",
        ),
        (
            "https://b.blob.core.windows.net/v/c.mp4?sv=2022&sig=Zx%2Fy%3D&se=2030",
            "https://b.blob.core.windows.net/v/c.mp4?sv=2022&sig=***&se=2030",
        ),
        (
            "http://cam/snap?user=admin&password=pw&apiKey=k1&X-Amz-Signature=ab&auth=x&keyframes=1",
            "http://cam/snap?user=***&password=***&apiKey=***&X-Amz-Signature=***&auth=***&keyframes=1",
        ),
        ("rtsp://cam.local:554/live?tcp", "rtsp://cam.local:554/live?tcp"),
        ("udp://@239.0.0.1:1234", "udp://@239.0.0.1:1234"),  # empty user info: multicast, no secret
        ("/srv/videos/lobby.mp4", "/srv/videos/lobby.mp4"),
        ("file:///srv/videos/lobby.mp4", "file:///srv/videos/lobby.mp4"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_unparseable_url_is_masked_not_passed_through() -> None:
    assert redact_url("rtsp://u:pw@[fe80::1/stream") == "rtsp://***"


@pytest.mark.parametrize("name", ["token", "access_token", "ApiKey", "api-key", "sig", "Signature", "passwd"])
def test_secret_param_names(name: str) -> None:
    assert is_secret_param(name)


@pytest.mark.parametrize("name", ["channel", "subtype", "keyframes", "stream", "resolution", "fps"])
def test_plain_param_names(name: str) -> None:
    assert not is_secret_param(name)


def test_redact_text_masks_the_url_and_its_credentials_wherever_they_appear() -> None:
    url = "rtsp://admin:hunter2%21@cam:554/s?token=t0k3n"
    # What PyAV raises: the URL it was given, then (in some builds) the decoded password on its own.
    message = f"[Errno 111] Connection refused: '{url}' (auth admin/hunter2! token t0k3n)"
    redacted = redact_text(message, url)
    assert "hunter2" not in redacted and "t0k3n" not in redacted
    assert "rtsp://***@cam:554/s?token=***" in redacted and "Connection refused" in redacted


def test_the_api_never_serves_credentials_from_old_camera_events() -> None:
    """Events written before the decoder redacted are masked again by the API's tail."""
    url = "rtsp://admin:pw123@cam:554/s"
    state = TailState(SightlineConfig())
    state.on_event(
        CameraEvent(camera_id="c1", event="error", at_ns=1, source=url, reason=f"cannot open {url}")
    )
    [view] = state.cameras_view()
    assert view["last_event"]["source"] == "rtsp://***@cam:554/s"
    assert "pw123" not in str(view)


def test_decoder_events_logs_and_errors_never_carry_camera_credentials(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    """A live camera behind credentials that cannot be reached: every trace of it is redacted."""
    config = stack.fresh_config("redact", partitions=1)
    password, token = "pw-5ecret-991", "tk-5ecret-772"
    url = f"rtsp://viewer:{password}@127.0.0.1:{free_port()}/stream?token={token}"
    camera = CameraSettings(
        id="locked", url=url, stall_timeout_s=1, reconnect_initial_s=0.2, reconnect_max_s=0.5
    )  # fmt: skip
    stop = threading.Event()
    threading.Timer(3, stop.set).start()
    caplog.set_level(logging.DEBUG)
    stats = run_cameras(config, [camera], stop, metrics_port=0)
    assert stats["locked"].reconnects >= 1
    records = read_topic(config, config.topics.camera_events.name)
    events = [CameraEvent.decode(m.value()) for m in records]
    assert events and all(e.source == redact_url(url) for e in events), [e.source for e in events]
    shown = [m.value().decode() for m in records] + [caplog.text, str(stats["locked"].error)]
    for text in shown:
        assert password not in text and token not in text, text
