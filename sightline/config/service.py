"""Settings for the HTTP surfaces: the REST API and the Prometheus endpoints."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sightline.config.infra import Section


class MetricsSettings(Section):
    # 0.0.0.0 in containers so Prometheus can scrape across the network.
    host: str = "127.0.0.1"
    # Each long-running command serves /metrics here; 0 disables it.
    decoder_port: int = Field(9101, ge=0, le=65535)
    inference_port: int = Field(9102, ge=0, le=65535)
    alerts_port: int = Field(9103, ge=0, le=65535)


class ApiSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    # Mutating endpoints need `Authorization: Bearer <token>`; None disables them.
    token: str | None = None
    public_reads: bool = True
    max_upload_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    max_pixels: int = Field(40_000_000, ge=1)
    # How many recent alerts the API keeps in memory for /v1/alerts and the live view.
    recent_alerts: int = Field(500, ge=1)
    # The API tails the frames topic (headers for fps in, payloads cached for the live view).
    tail_frames: bool = True
    live_jpeg_quality: int = Field(80, ge=1, le=100)


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
