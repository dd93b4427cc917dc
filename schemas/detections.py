"""Detections records: one per frame, parallel arrays like supervision's `Detections`."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.base import Contract


class ModelRef(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    version: str


class FrameRef(BaseModel):
    """Where the source frame can be found again (for evidence and the live view)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    topic: str
    partition: int = Field(ge=0)
    offset: int = Field(ge=0)
    claim_check: str | None = None


class Timing(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    queue_ms: float = Field(ge=0)
    preprocess_ms: float = Field(ge=0)
    inference_ms: float = Field(ge=0)
    batch_size: int = Field(ge=1)


class DetectionArrays(BaseModel):
    """Parallel arrays: element i of each list describes box i."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    xyxy: list[tuple[float, float, float, float]] = Field(default_factory=list)
    confidence: list[float] = Field(default_factory=list)
    class_id: list[int] = Field(default_factory=list)
    class_name: list[str] = Field(default_factory=list)
    tracker_id: list[int | None] = Field(default_factory=list)

    @model_validator(mode="after")
    def _same_lengths(self) -> DetectionArrays:
        n = len(self.xyxy)
        lengths = {len(self.confidence), len(self.class_id), len(self.class_name), len(self.tracker_id)}
        if lengths != {n}:
            raise ValueError("xyxy, confidence, class_id, class_name and tracker_id must have equal lengths")
        return self


class DetectionsRecord(Contract):
    """Value of a detections record; key = camera id."""

    schema_version: Literal[1] = 1
    camera_id: str
    seq: int = Field(ge=0)
    capture_ns: int = Field(ge=0)
    stream_ts: float | None = None
    width: int = Field(ge=1)
    height: int = Field(ge=1)
    frame: FrameRef
    model: ModelRef
    timing: Timing
    produced_ns: int = Field(ge=0)
    detections: DetectionArrays
