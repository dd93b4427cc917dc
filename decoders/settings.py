"""Camera settings: where frames come from and how they are sampled."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from pydantic import Field, field_validator

from streams.redact import redact_url
from streams.settings import Section

LIVE_SCHEMES = {"rtsp", "rtsps", "http", "https", "rtmp", "udp", "tcp", "srt"}


class HealthSettings(Section):
    """Image statistics and offline records for the camera health rules (docs/alerts.md)."""

    enabled: bool = True
    every_s: float = Field(1.0, gt=0, description="Stream time between two measured frames.")
    width: int = Field(160, ge=16, le=1920, description="Width of the grayscale copy measured.")
    offline_every_s: float = Field(5.0, gt=0, description="While the source is away: a record this often.")
    # None: the reference kept in Redis, else the first good frame (then kept in Redis).
    reference: Path | None = Field(None, description="Image file to use as the reference frame.")
    reference_check_s: float = Field(10.0, gt=0, description="How often Redis is asked for a new reference.")
    # A frame becomes the reference only if it is not covered: this much contrast, and a mean
    # grey level inside `reference_brightness`.
    reference_min_contrast: float = Field(10.0, ge=0)
    reference_brightness: tuple[float, float] = (16.0, 240.0)


class CameraSettings(Section):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    url: str
    loop: bool = False
    fps: float | None = Field(None, gt=0, description="Target sampling rate; None keeps every frame.")
    resize: tuple[int, int] | None = Field(None, description="Output (width, height); None keeps size.")
    jpeg_quality: int = Field(85, ge=1, le=100)
    keyframes_only: bool = False
    rtsp_transport: Literal["udp", "tcp"] = "tcp"
    # A live source that sends nothing for this long is treated as disconnected.
    stall_timeout_s: float = Field(10.0, gt=0)
    reconnect_initial_s: float = Field(0.5, gt=0)
    reconnect_max_s: float = Field(30.0, gt=0)
    # What the inference worker does when it falls behind this camera: `complete` runs every frame
    # in order, `realtime` skips frames older than `max_age_ms` (default `inference.max_frame_age_ms`)
    # and says so in their detections records. None: realtime for live sources, complete for files.
    freshness: Literal["complete", "realtime"] | None = None
    max_age_ms: float | None = Field(None, gt=0)
    health: HealthSettings = Field(default_factory=HealthSettings)

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        parsed = urlparse(value)
        shown = redact_url(value)  # error messages reach logs and terminals: no credentials
        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*//", value):
            raise ValueError(f"{shown!r} looks like a URL with the ':' after its scheme missing")
        if parsed.scheme in ("", "file"):
            return value
        if parsed.scheme not in LIVE_SCHEMES:
            raise ValueError(f"unsupported URL scheme {parsed.scheme!r} in {shown!r}")
        if not parsed.hostname:
            raise ValueError(f"URL {shown!r} has no host")
        return value

    @property
    def is_live(self) -> bool:
        return urlparse(self.url).scheme in LIVE_SCHEMES

    @property
    def freshness_policy(self) -> Literal["complete", "realtime"]:
        return self.freshness or ("realtime" if self.is_live else "complete")

    @property
    def path(self) -> Path:
        """The local file for file sources."""
        parsed = urlparse(self.url)
        return Path(parsed.path if parsed.scheme == "file" else self.url)
