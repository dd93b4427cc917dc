"""Detections records: one per frame, parallel arrays like supervision's `Detections`.

`DetectionsRecord` is the one codec every stage uses: numpy columns to JSON bytes and back,
with no per-box Python objects on the way (`encode` writes the arrays through orjson, `decode`
turns each parsed column into one array). `DetectionsContract` is the same record as a pydantic
model: it generates `detections.schema.json` and, for the rare record the array checks cannot
vouch for (booleans, nulls in a column, numbers past 64 bits), it decides and names the error,
so both paths accept exactly the same records.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Annotated, Any, Literal, Self

import numpy as np
import orjson
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from schemas.base import Contract
from schemas.errors import ContractError

SCHEMA_VERSION = 1
_INT64_MAX = 2**63 - 1


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


class Skipped(BaseModel):
    """Why the worker did not run the model on this frame (a `realtime` camera's frame that was
    older than its `max_age_ms` when the worker could take it). Readers treat the frame as not
    seen, which is different from seen with nothing in it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    reason: Literal["stale"]
    age_ms: float = Field(ge=0)
    max_age_ms: float = Field(ge=0)


class DetectionArrays(BaseModel):
    """Parallel arrays: element i of each list describes box i."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    xyxy: list[tuple[float, float, float, float]] = Field(default_factory=list)
    confidence: list[float] = Field(default_factory=list)
    class_id: list[Annotated[int, Field(ge=-_INT64_MAX, le=_INT64_MAX)]] = Field(default_factory=list)
    class_name: list[str] = Field(default_factory=list)
    # -1 while a track is not yet confirmed; null with tracking off.
    tracker_id: list[Annotated[int, Field(ge=-1, le=_INT64_MAX)] | None] = Field(default_factory=list)

    @model_validator(mode="after")
    def _same_lengths(self) -> DetectionArrays:
        n = len(self.xyxy)
        lengths = {len(self.confidence), len(self.class_id), len(self.class_name), len(self.tracker_id)}
        if lengths != {n}:
            raise ValueError("xyxy, confidence, class_id, class_name and tracker_id must have equal lengths")
        return self


class _Envelope(Contract):
    """Everything but the boxes, validated by pydantic (a handful of fields per record)."""

    schema_version: Literal[1] = 1
    camera_id: str
    seq: int = Field(ge=0)
    capture_ns: int = Field(ge=0)
    stream_ts: float | None = None
    width: int = Field(ge=1)
    height: int = Field(ge=1)
    frame: FrameRef
    model: ModelRef
    # null only on a skipped frame: no batch ran it.
    timing: Timing | None
    produced_ns: int = Field(ge=0)
    skipped: Skipped | None = None


class DetectionsContract(_Envelope):
    """Value of a detections record; key = camera id. The JSON Schema's source."""

    detections: DetectionArrays

    @model_validator(mode="after")
    def _skipped_has_no_boxes(self) -> DetectionsContract:
        if self.skipped is not None and self.detections.xyxy:
            raise ValueError("a skipped frame has no detections")
        if self.skipped is None and self.timing is None:
            raise ValueError("timing is required unless the frame was skipped")
        return self


_FLOAT = np.float64
_INT = np.int64


@dataclass(frozen=True, slots=True, eq=False)
class DetectionColumns:
    """A frame's boxes as parallel arrays. `tracker_id` is -1 for a box without an id (track not
    confirmed yet, or tracking off); `tracked` says whether the record carried ids at all."""

    xyxy: NDArray[np.float64]  # (n, 4)
    confidence: NDArray[np.float64]  # (n,)
    class_id: NDArray[np.int64]  # (n,)
    class_name: NDArray[np.str_]  # (n,)
    tracker_id: NDArray[np.int64]  # (n,)
    tracked: bool = True

    def __len__(self) -> int:
        return len(self.confidence)

    @classmethod
    def empty(cls, tracked: bool = True) -> DetectionColumns:
        return cls(
            np.empty((0, 4), _FLOAT),
            np.empty(0, _FLOAT),
            np.empty(0, _INT),
            np.empty(0, np.str_),
            np.empty(0, _INT),
            tracked,
        )

    @classmethod
    def build(
        cls,
        xyxy: Any,
        confidence: Any,
        class_id: Any,
        class_name: Any,
        tracker_id: Any | None,
    ) -> DetectionColumns:
        """From array-likes of equal length (``tracker_id`` None: not tracked)."""
        xy = np.asarray(xyxy, _FLOAT).reshape(-1, 4)
        n = len(xy)
        names = np.asarray(class_name).astype(np.str_) if n else np.empty(0, np.str_)
        columns = cls(
            xy,
            np.asarray(confidence, _FLOAT).reshape(-1),
            np.asarray(class_id, _INT).reshape(-1),
            names.reshape(-1),
            np.full(n, -1, _INT) if tracker_id is None else np.asarray(tracker_id, _INT).reshape(-1),
            tracker_id is not None,
        )
        if {
            len(columns.confidence),
            len(columns.class_id),
            len(columns.class_name),
            len(columns.tracker_id),
        } != {n}:
            raise ValueError("xyxy, confidence, class_id, class_name and tracker_id must have equal lengths")
        return columns

    def wire(self, xyxy_decimals: int = 1, conf_decimals: int = 4) -> dict[str, Any]:
        """The JSON object, numeric columns as arrays (orjson writes them without per-box
        objects), rounded to what the wire format promises."""
        n = len(self)
        return {
            "xyxy": self.xyxy.round(xyxy_decimals),
            "confidence": self.confidence.round(conf_decimals),
            "class_id": self.class_id,
            "class_name": self.class_name.tolist(),  # orjson writes numeric arrays only
            "tracker_id": self.tracker_id if self.tracked else [None] * n,
        }

    def as_lists(self) -> dict[str, Any]:
        """``wire()`` as plain lists, for writers that are not orjson (``json.dumps``)."""
        return {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in self.wire().items()}


class _Irregular(Exception):
    """A column the array checks cannot vouch for: the contract model decides."""


def _numbers(values: Any, shape_tail: tuple[int, ...], kinds: str, dtype: type) -> NDArray[Any]:
    if not isinstance(values, list):
        raise _Irregular
    if not values:
        return np.empty((0, *shape_tail), dtype)
    try:
        array = np.asarray(values)  # dtype inferred: strings, nulls and big numbers show up in it
    except ValueError:  # ragged rows
        raise _Irregular from None
    if array.dtype.kind not in kinds or array.shape[1:] != shape_tail:
        raise _Irregular
    return array.astype(dtype, copy=False)


def _columns(raw: Any) -> DetectionColumns:
    if not isinstance(raw, dict) or not raw.keys() <= {
        "xyxy", "confidence", "class_id", "class_name", "tracker_id",
    }:  # fmt: skip
        raise _Irregular
    xyxy = _numbers(raw.get("xyxy", []), (4,), "if", _FLOAT)
    n = len(xyxy)
    confidence = _numbers(raw.get("confidence", []), (), "if", _FLOAT)
    class_id = _numbers(raw.get("class_id", []), (), "i", _INT)
    names = raw.get("class_name", [])
    if not isinstance(names, list) or set(map(type, names)) - {str}:  # numpy would stringify a number
        raise _Irregular
    class_name = np.asarray(names) if names else np.empty(0, np.str_)
    if class_name.dtype.kind != "U" or class_name.ndim != 1:
        raise _Irregular
    ids = raw.get("tracker_id", [])
    tracked = True
    if isinstance(ids, list) and ids and ids[0] is None and ids.count(None) == len(ids):
        tracker_id, tracked = np.full(len(ids), -1, _INT), False
    else:
        tracker_id = _numbers(ids, (), "i", _INT)
        if n and min(ids) < -1:
            raise _Irregular
    if {len(confidence), len(class_id), len(class_name), len(tracker_id)} != {n}:
        raise _Irregular
    return DetectionColumns(xyxy, confidence, class_id, class_name, tracker_id, tracked)


def _from_contract(contract: DetectionsContract) -> DetectionColumns:
    det = contract.detections
    ids = det.tracker_id
    tracked = any(t is not None for t in ids) or not ids
    return DetectionColumns.build(
        det.xyxy,
        det.confidence,
        det.class_id,
        det.class_name,
        [-1 if t is None else t for t in ids] if tracked else None,
    )


def _contract_error(exc: ValidationError, model: type[BaseModel]) -> ContractError:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(value)"
    return ContractError(f"{model.__name__} invalid at {where}: {first['msg']}")


@dataclass(frozen=True, slots=True, eq=False)
class DetectionsRecord:
    """Value of a detections record (key = camera id), as the stages hold it."""

    camera_id: str
    seq: int
    capture_ns: int
    width: int
    height: int
    frame: FrameRef
    model: ModelRef
    timing: Timing | None
    produced_ns: int
    detections: DetectionColumns
    stream_ts: float | None = None
    skipped: Skipped | None = None
    schema_version: int = SCHEMA_VERSION

    @classmethod
    def decode(cls, payload: bytes | str) -> Self:
        """Parse and validate a record value; every failure is a ContractError naming the field."""
        if isinstance(payload, str):
            payload = payload.encode()
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise ContractError(f"DetectionsRecord invalid at (value): invalid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ContractError("DetectionsRecord invalid at (value): not a JSON object")
        # JSON booleans would pass the array checks as numbers; the contract model rejects them.
        regular = b"true" not in payload and b"false" not in payload
        raw_columns = data.pop("detections", None)
        try:
            envelope = _Envelope.model_validate(data)
        except ValidationError as exc:
            raise _contract_error(exc, cls) from None
        try:
            if not regular:
                raise _Irregular
            columns = _columns(raw_columns)
        except _Irregular:
            columns = cls._checked_columns(payload)
        if envelope.skipped is not None and len(columns):
            raise ContractError("DetectionsRecord invalid at detections: a skipped frame has no detections")
        if envelope.skipped is None and envelope.timing is None:
            raise ContractError("DetectionsRecord invalid at timing: required unless the frame was skipped")
        return cls(
            camera_id=envelope.camera_id,
            seq=envelope.seq,
            capture_ns=envelope.capture_ns,
            width=envelope.width,
            height=envelope.height,
            frame=envelope.frame,
            model=envelope.model,
            timing=envelope.timing,
            produced_ns=envelope.produced_ns,
            detections=columns,
            stream_ts=envelope.stream_ts,
            skipped=envelope.skipped,
        )

    @staticmethod
    def _checked_columns(payload: bytes | str) -> DetectionColumns:
        try:
            contract = DetectionsContract.model_validate_json(payload)
        except ValidationError as exc:
            raise _contract_error(exc, DetectionsRecord) from None
        return _from_contract(contract)

    def to_json(self) -> dict[str, Any]:
        """The record as a JSON-ready object (columns as numpy arrays: serialise with orjson)."""
        return {
            "schema_version": self.schema_version,
            "camera_id": self.camera_id,
            "seq": self.seq,
            "capture_ns": self.capture_ns,
            "stream_ts": self.stream_ts,
            "width": self.width,
            "height": self.height,
            "frame": self.frame.model_dump(),
            "model": self.model.model_dump(),
            "timing": self.timing.model_dump() if self.timing is not None else None,
            "produced_ns": self.produced_ns,
            "detections": self.detections.wire(),
            "skipped": self.skipped.model_dump() if self.skipped is not None else None,
        }

    def encode(self) -> bytes:
        return orjson.dumps(self.to_json(), option=orjson.OPT_SERIALIZE_NUMPY)

    def replace(self, **changes: Any) -> DetectionsRecord:
        return replace(self, **changes)
