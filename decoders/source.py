"""Opening camera sources with PyAV, with options that matter for live streams."""

from __future__ import annotations

from pathlib import Path

import av

from decoders.errors import SourceError
from decoders.settings import CameraSettings
from streams.redact import redact_text, redact_url


def open_source(camera: CameraSettings) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
    """Open the camera's container and pick its first video stream."""
    options: dict[str, str] = {}
    url = camera.url
    if camera.is_live:
        scheme = url.split(":", 1)[0]
        if scheme.startswith("rtsp"):
            options["rtsp_transport"] = camera.rtsp_transport
        # Keep buffering low: for a camera, a fresh frame beats a complete backlog.
        options["fflags"] = "nobuffer"
        timeout: tuple[float, float] | None = (camera.stall_timeout_s, camera.stall_timeout_s)
    else:
        path = camera.path
        if not path.exists():
            raise SourceError(f"camera {camera.id}: file {path} does not exist")
        if not path.is_file():
            raise SourceError(f"camera {camera.id}: {path} is not a file")
        url = str(Path(path))
        timeout = None
    try:
        container = av.open(url, options=options, timeout=timeout)
    except av.error.FFmpegError as exc:
        shown = redact_url(camera.url)
        raise SourceError(
            f"camera {camera.id}: cannot open {shown}: {redact_text(str(exc), camera.url)}"
        ) from exc
    if not container.streams.video:
        container.close()
        raise SourceError(f"camera {camera.id}: {redact_url(camera.url)} has no video stream")
    stream = container.streams.video[0]
    if stream.codec_context is None or stream.codec_context.name is None:
        container.close()
        raise SourceError(f"camera {camera.id}: {redact_url(camera.url)}: unknown or unsupported video codec")
    stream.thread_type = "AUTO"
    if camera.keyframes_only:
        stream.codec_context.skip_frame = "NONKEY"
    return container, stream
