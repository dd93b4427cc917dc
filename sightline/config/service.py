"""Settings for the HTTP surfaces: the REST API and the Prometheus endpoints."""

from __future__ import annotations

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
