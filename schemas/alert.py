"""Alert records, as published to the alerts topic and sent to webhooks."""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.base import Contract

AlertType = Literal["tally", "defect", "scan_gap", "spike", "drop", "threshold", "drift", "camera_health"]
Severity = Literal["info", "warning", "critical"]


class TimeWindow(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    start_ns: int = Field(ge=0)
    end_ns: int = Field(ge=0)


class AlertRecord(Contract):
    """Value of an alert record; key = camera id."""

    schema_version: Literal[1] = 1
    alert_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    type: AlertType
    severity: Severity
    camera_id: str
    rule: str
    window: TimeWindow
    # Latest capture time that contributed: capture-to-webhook latency is measured from it.
    capture_ns: int = Field(ge=0)
    created_ns: int = Field(ge=0)
    summary: str
    evidence: dict[str, Any] = Field(default_factory=dict)
    # The version of the rules (schemas/rules_version.py) that raised it; 0 = the rules file
    # (no version saved yet); None = not raised by the rules (drift alerts).
    rules_version: int | None = Field(None, ge=0)


def alert_id(*parts: object) -> str:
    """Deterministic id: the same rule firing on the same input always yields the same id.

    This is what makes webhook deduplication and replay stable across restarts.
    """
    text = "\x1f".join(str(part) for part in parts)
    return hashlib.sha256(text.encode()).hexdigest()[:32]
