"""Camera events: a camera going online, offline or failing, for operators and the API."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from schemas.base import Contract


class CameraEvent(Contract):
    """Value of a camera-events record; key = camera id."""

    schema_version: Literal[1] = 1
    camera_id: str
    event: Literal["online", "offline", "error"]
    at_ns: int = Field(ge=0)
    source: str
    reason: str | None = None
    attempt: int = Field(0, ge=0, description="Reconnect attempt that produced this event.")
