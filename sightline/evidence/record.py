"""The evidence record: `<alert_id>/evidence.json`, next to the snapshot and the clip.

It says, per part, whether it is stored, still pending, partial or missing, and for anything not
there, exactly why (frames expired from Kafka, an image gone from Redis, post-roll frames that
never came): evidence is never silently missing. The API serves it with the alert.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.alert import AlertRecord
from sightline.evidence.store import EvidenceStore
from streams.evidence_urls import FILES, Part

PartStatus = Literal["pending", "stored", "partial", "missing"]
Status = Literal["pending", "complete", "partial", "missing"]
RECORD_FILE = "evidence.json"


class Gap(BaseModel):
    """Frames a part lacks, and why."""

    model_config = ConfigDict(extra="forbid")
    # kafka_expired, redis_expired, no_detections, no_frame_record, pre_roll, post_roll, undecodable
    cause: str
    reason: str
    frames: int = 0
    first_seq: int | None = None
    last_seq: int | None = None


class PartState(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: PartStatus = "pending"
    key: str | None = None
    bytes: int | None = None
    frames: int | None = None  # clip: frames encoded; snapshot: 1
    expected_frames: int | None = None
    seq: int | None = None  # snapshot: the key frame
    first_capture_ns: int | None = None
    last_capture_ns: int | None = None
    fps: float | None = None
    duration_s: float | None = None
    stored_ns: int | None = None
    missing: list[Gap] = Field(default_factory=list)


class EvidenceRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")
    schema_version: Literal[1] = 1
    alert_id: str
    alert: dict[str, Any]
    parts: dict[Part, PartState] = Field(default_factory=lambda: {p: PartState() for p in FILES})
    updated_ns: int = 0

    @property
    def status(self) -> Status:
        states = {p.status for p in self.parts.values()}
        if "pending" in states:
            return "pending"
        if states == {"stored"}:
            return "complete"
        return "missing" if states == {"missing"} else "partial"

    def public(self) -> dict[str, Any]:
        """What the API shows: the record with its overall status."""
        data = self.model_dump(exclude={"alert"})
        return {"status": self.status, **data}

    @classmethod
    def new(cls, alert: AlertRecord) -> EvidenceRecord:
        return cls(alert_id=alert.alert_id, alert=alert.model_dump())


def record_key(alert_id: str) -> str:
    return f"{alert_id}/{RECORD_FILE}"


def part_key(alert_id: str, part: Part) -> str:
    return f"{alert_id}/{FILES[part]}"


def load_record(store: EvidenceStore, alert_id: str) -> EvidenceRecord | None:
    data = store.get(record_key(alert_id))
    return EvidenceRecord.model_validate_json(data) if data is not None else None
