"""Camera health: image statistics and connection state per camera, for the health rules.

The decoder measures a small grayscale copy of a frame every few seconds (brightness,
contrast, sharpness, similarity to a reference frame) and says when its source has been
offline; the alert processors publish `tick` records of their own, so a camera whose decoder
is gone altogether is still noticed (docs/alerts.md, "Camera health").
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from schemas.base import Contract

HealthKind = Literal["stats", "offline", "tick"]


class CameraHealth(Contract):
    """Value of a camera-health record; key = camera id.

    - `stats`: measured on the frame `seq`; `at_ns` is its capture time.
    - `offline`: the decoder has had no frame from the source for `offline_s` (its clock);
      `at_ns` is the decoder's wall clock.
    - `tick`: written by an alert processor, `at_ns` its wall clock; carries no measurement.
    """

    schema_version: Literal[1] = 1
    camera_id: str = Field(min_length=1)
    kind: HealthKind
    at_ns: int = Field(ge=0)
    seq: int | None = Field(None, ge=0, description="stats: the frame measured.")
    brightness: float | None = Field(None, ge=0, le=255, description="Mean grey level, 0-255.")
    contrast: float | None = Field(None, ge=0, description="Standard deviation of the grey levels.")
    sharpness: float | None = Field(None, ge=0, description="Variance of the Laplacian of the small copy.")
    similarity: float | None = Field(
        None, ge=-1, le=1, description="Correlation with the reference frame; None without one."
    )
    reference_id: str | None = Field(None, description="Which reference `similarity` compares with.")
    width: int | None = Field(None, ge=1, description="Width of the grayscale copy measured.")
    offline_s: float | None = Field(None, ge=0, description="offline: seconds since the last frame.")
    reason: str | None = None
