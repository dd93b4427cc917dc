"""The `evidence` section: what `sightline evidence` renders, where it keeps it, for how long."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from streams.evidence_urls import EvidenceUrlSettings
from streams.settings import Section


class EvidenceSettings(Section):
    group_id: str = "sightline-evidence"
    dir: Path = Field(Path(".sightline/evidence"), description="Local store: one folder per alert id.")
    retention_days: float = Field(30.0, gt=0, description="Evidence older than this is deleted.")
    sweep_every_s: float = Field(3600.0, gt=0, description="How often the retention sweep runs.")
    pre_roll_s: float = Field(5.0, ge=0, description="Clip starts this long before the alert's window.")
    post_roll_s: float = Field(5.0, ge=0, description="Clip ends this long after the alert's window.")
    max_clip_s: float = Field(
        60.0, gt=0, description="Longest clip; a longer one is cut around the key frame."
    )
    # The clip waits for its post-roll frames (and their detections) this long past the time
    # they should have arrived, then is rendered with what came and says what did not.
    post_roll_wait_s: float = Field(30.0, ge=0)
    # Kafka timestamps are produce times, not capture times: records are searched from this
    # much before the clip's first capture time (a file decoder can run ahead of the clock).
    search_slack_s: float = Field(30.0, ge=0)
    jpeg_quality: int = Field(90, ge=1, le=100)
    clip_crf: int = Field(23, ge=0, le=51, description="libx264 constant rate factor (lower: better).")
    clip_preset: str = Field("veryfast", description="libx264 preset: CPU per clip against size.")
    urls: EvidenceUrlSettings = Field(default_factory=EvidenceUrlSettings)
