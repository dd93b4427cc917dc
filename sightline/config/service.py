"""Settings of the command layer's own services: the REST API and the drift monitor."""

from __future__ import annotations

import re
from typing import Any, Literal, Self

from pydantic import AliasChoices, ConfigDict, Field, SecretStr, model_validator

from streams.settings import Section

REVIEWER = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


class ApiSettings(Section):
    # Tokens are SecretStr (masked in repr, logs and dumps); errors never echo the input either,
    # and assignments in code are validated so a plain str never replaces a SecretStr.
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True, validate_assignment=True)

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    # Mutating endpoints need `Authorization: Bearer <admin_token>`; None disables them. `token` is
    # the old name of `admin_token`, still read from files and SIGHTLINE_API__TOKEN.
    admin_token: SecretStr | None = Field(None, validation_alias=AliasChoices("admin_token", "token"))
    # When set, read endpoints need this token or the admin token (header or login cookie).
    read_token: SecretStr | None = None
    # Reviewers, by name: each token may read and give verdicts on alerts (Confirm / False
    # positive); the name is who the feedback record says gave it.
    review_tokens: dict[str, SecretStr] = Field(default_factory=dict)
    # Without a read_token, reads are open while this is true, else they need the admin token.
    public_reads: bool = True
    # Lifetime of the live view's login cookie.
    session_ttl_s: int = Field(12 * 3600, ge=60)
    max_upload_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    max_pixels: int = Field(40_000_000, ge=1)
    # /v1/detect requests admitted at once (reading, decoding, queued or in the model); more get 503.
    max_queue: int = Field(64, ge=1)
    # How many recent alerts the API keeps in memory for /v1/alerts and the live view.
    recent_alerts: int = Field(500, ge=1)
    # The API tails the frames topic (headers for fps in, payloads cached for the live view).
    tail_frames: bool = True
    live_jpeg_quality: int = Field(80, ge=1, le=100)
    # The live view lists configured cameras always, others only while seen (a frame, detections
    # or camera event captured) within this many seconds, so a benchmark's cameras fade out.
    live_hide_after_s: float = Field(300.0, gt=0)
    # One live MJPEG or SSE response lasts at most this long; the page then reconnects (SSE resumes
    # after its Last-Event-ID), so an expired or revoked session stops the streams too.
    live_stream_max_s: float = Field(300.0, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _one_admin_name(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("token") is None:
            return data
        if data.get("admin_token") is not None:
            raise ValueError("give `admin_token` or its old name `token`, not both")
        # A dumped config plus `token` (e.g. the demo's) has `admin_token: null`, which would win.
        rest = {k: v for k, v in data.items() if k not in ("token", "admin_token")}
        return {**rest, "admin_token": data["token"]}

    @model_validator(mode="after")
    def _check_tokens(self) -> Self:
        for name in ("admin_token", "read_token"):
            secret = getattr(self, name)
            value = secret.get_secret_value() if secret is not None else None
            if value is not None and not value.strip():
                raise ValueError(f"api.{name} is empty; leave it out to disable it")
            if value is not None and set(value) == {"*"}:
                # What a dumped config holds instead of the secret: loading it back must not
                # silently make "**********" the token.
                env = f"SIGHTLINE_API__{name.upper()}"
                raise ValueError(f"api.{name} is a masked placeholder; set the real one, e.g. in {env}")
        for name, secret in self.review_tokens.items():
            if not REVIEWER.match(name):
                raise ValueError(f"api.review_tokens: reviewer name {name!r} must match {REVIEWER.pattern}")
            value = secret.get_secret_value()
            if not value.strip() or set(value) == {"*"}:
                raise ValueError(f"api.review_tokens.{name} is empty or a masked placeholder")
            others = [s.get_secret_value() for s in (self.admin_token, self.read_token) if s is not None]
            others += [s.get_secret_value() for n, s in self.review_tokens.items() if n != name]
            if value in others:
                raise ValueError(f"api.review_tokens.{name} must differ from every other token")
        admin, read = self.admin_token, self.read_token
        if admin is not None and read is not None and admin.get_secret_value() == read.get_secret_value():
            raise ValueError("api.read_token must differ from api.admin_token")
        return self

    @property
    def reads_open(self) -> bool:
        """Read endpoints need no token."""
        return self.read_token is None and self.public_reads


class DriftSettings(Section):
    """Input/output drift per camera: recent window vs the first `baseline_size` samples."""

    group_id: str = "sightline-drift"
    baseline_size: int = Field(200, ge=10, description="Samples (frames) forming each camera's baseline.")
    window_size: int = Field(100, ge=10, description="Recent samples compared against the baseline.")
    evaluate_every: int = Field(25, ge=1, description="Compare after this many new samples.")
    # KS statistic (numeric features) or PSI (class mix) at/above which a feature counts as drifted...
    ks_threshold: float = Field(0.5, gt=0, le=1)
    psi_threshold: float = Field(0.25, gt=0)
    # ...and only when the shift also matters: KS alone flags tiny shifts of very narrow distributions.
    min_relative_shift: float = Field(0.1, ge=0, description="|mean change| / |baseline mean|, numerics.")
    output_min_relative_shift: float = Field(0.3, ge=0, description="Same, for detection-derived features.")
    decode_scale: int = Field(2, ge=1, le=8, description="JPEG DCT downscale factor for frame statistics.")
    severity: Literal["info", "warning", "critical"] = "warning"
    metrics_port: int = Field(9104, ge=0, le=65535, description="`sightline drift` serves /metrics; 0 = off.")
