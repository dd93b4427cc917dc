"""Alert processor settings: rules per camera and webhook endpoints."""

from __future__ import annotations

from pydantic import Field

from sightline.config.infra import Section


class AlertsSettings(Section):
    app_id: str = "sightline-alerts"
    rules_file: str | None = Field(None, description="YAML rules file; rules may also be inline.")
