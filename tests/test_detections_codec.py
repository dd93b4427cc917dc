"""The detections codec: columns to bytes and back, and exactly the contract's strictness.

Fast tier: no broker, no model.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import numpy as np
import orjson
import pytest

from schemas.detections import (
    DetectionColumns,
    DetectionsContract,
    DetectionsRecord,
    FrameRef,
    ModelRef,
    Skipped,
    Timing,
)
from schemas.errors import ContractError

TIMING = Timing(queue_ms=1.0, preprocess_ms=2.0, inference_ms=3.0, batch_size=4)


def make(columns: DetectionColumns, **changes: Any) -> DetectionsRecord:
    record = DetectionsRecord(
        camera_id="cam-1",
        seq=7,
        capture_ns=1_700_000_000_000_000_000,
        width=768,
        height=576,
        frame=FrameRef(topic="sightline.frames", partition=2, offset=40),
        model=ModelRef(name="nanodet-m", version="1"),
        timing=TIMING,
        produced_ns=1_700_000_000_100_000_000,
        detections=columns,
        stream_ts=0.7,
    )
    return record.replace(**changes)


def boxes(tracker_id: list[int] | None) -> DetectionColumns:
    return DetectionColumns.build(
        [[1.04, 2.0, 30.0, 40.0], [5.0, 6.0, 70.0, 80.55]],
        [0.91234, 0.5],
        [0, 2],
        ["person", "car"],
        tracker_id,
    )


def assert_same(a: DetectionsRecord, b: DetectionsRecord) -> None:
    for name in ("camera_id", "seq", "capture_ns", "width", "height", "frame", "model", "timing"):
        assert getattr(a, name) == getattr(b, name), name
    assert (a.produced_ns, a.stream_ts, a.skipped) == (b.produced_ns, b.stream_ts, b.skipped)
    da, db = a.detections, b.detections
    np.testing.assert_allclose(da.xyxy, db.xyxy, atol=0.05)
    np.testing.assert_allclose(da.confidence, db.confidence, atol=1e-4)
    assert da.class_id.tolist() == db.class_id.tolist()
    assert da.class_name.tolist() == db.class_name.tolist()
    assert da.tracker_id.tolist() == db.tracker_id.tolist() and da.tracked == db.tracked


@pytest.mark.parametrize(
    "record",
    [
        make(boxes([3, 9])),
        make(boxes([3, -1])),  # a track not confirmed yet
        make(boxes(None)),  # tracking off: null ids on the wire
        make(DetectionColumns.empty()),  # no boxes
        make(
            boxes([1, 2]), frame=FrameRef(topic="f", partition=0, offset=1, claim_check="sightline:frame:c:1")
        ),
        make(
            DetectionColumns.empty(),
            timing=None,
            skipped=Skipped(reason="stale", age_ms=2500.0, max_age_ms=1000.0),
        ),
    ],
    ids=["tracked", "unconfirmed", "untracked", "empty", "claim-checked", "skipped"],
)
def test_round_trip_and_the_contract_agrees(record: DetectionsRecord) -> None:
    payload = record.encode()
    back = DetectionsRecord.decode(payload)
    assert_same(back, record)
    assert back.encode() == payload  # stable: a re-encoded record is the same bytes
    DetectionsContract.decode(payload)  # the JSON Schema's model accepts what the codec writes


def test_columns_are_arrays_with_the_rounding_the_wire_promises() -> None:
    back = DetectionsRecord.decode(make(boxes([3, 9])).encode()).detections
    assert back.xyxy.dtype == np.float64 and back.xyxy.shape == (2, 4)
    assert back.xyxy[0, 0] == 1.0 and back.xyxy[1, 3] == 80.6 and back.confidence[0] == 0.9123
    assert back.class_id.dtype == np.int64 and back.tracker_id.dtype == np.int64
    assert back.class_name.dtype.kind == "U"


def test_null_ids_mixed_with_ids_decode_as_no_id() -> None:
    data = orjson.loads(make(boxes([3, 9])).encode())
    data["detections"]["tracker_id"] = [None, 4]
    back = DetectionsRecord.decode(orjson.dumps(data)).detections
    assert back.tracker_id.tolist() == [-1, 4] and back.tracked


def mutate(path: list[str | int], value: Any) -> bytes:
    data = orjson.loads(make(boxes([3, 9])).encode())
    target = data
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return json.dumps(data).encode()  # json: orjson refuses integers past 64 bits


BAD = {
    "wrong version": (["schema_version"], 2),
    "unknown field": (["extra"], 1),
    "missing detections": (["detections"], KeyError),
    "detections not an object": (["detections"], [1, 2]),
    "unknown column": (["detections", "mask"], []),
    "short confidence": (["detections", "confidence"], [0.5]),
    "three coordinates": (["detections", "xyxy", 0], [1, 2, 3]),
    "string coordinate": (["detections", "xyxy", 0, 1], "left"),
    "null coordinate": (["detections", "xyxy", 0, 1], None),
    "fractional class id": (["detections", "class_id", 0], 1.5),
    "numeric class name": (["detections", "class_name", 0], 3),
    "null class name": (["detections", "class_name", 0], None),
    "tracker id below -1": (["detections", "tracker_id", 0], -2),
    "tracker id past 64 bits": (["detections", "tracker_id", 0], 2**70),
    "negative seq": (["seq"], -1),
    "no timing": (["timing"], None),
    "skipped with boxes": (["skipped"], {"reason": "stale", "age_ms": 1.0, "max_age_ms": 1.0}),
    "unknown skip reason": (["skipped"], {"reason": "bored", "age_ms": 1.0, "max_age_ms": 1.0}),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_what_the_contract_rejects_the_codec_rejects(case: str) -> None:
    path, value = BAD[case]
    payload = mutate(path, value)
    with pytest.raises(ContractError):
        DetectionsContract.decode(payload)
    with pytest.raises(ContractError, match="DetectionsRecord invalid"):
        DetectionsRecord.decode(payload)


@pytest.mark.parametrize("payload", [b"", b"not json", b"[]", b"null", b'{"camera_id": "c"}'])
def test_garbage_is_a_contract_error(payload: bytes) -> None:
    with pytest.raises(ContractError):
        DetectionsRecord.decode(payload)


def test_lax_numbers_agree_with_the_contract() -> None:
    """Integers as coordinates are fine, in both; the contract decides odd ones (pydantic's lax
    numbers: a boolean as a float, 1.0 as an integer) and the codec follows it."""
    lax = [
        (["detections", "xyxy", 0], [1, 2, 3, 4]),
        (["detections", "class_id", 0], 1.0),
        (["detections", "confidence", 0], False),
        (["detections", "xyxy", 0, 1], True),
    ]
    for path, value in lax:
        payload = mutate(path, value)
        expected = DetectionsContract.decode(payload).detections
        got = DetectionsRecord.decode(payload).detections
        assert got.xyxy.tolist() == [list(b) for b in expected.xyxy]
        assert got.class_id.tolist() == expected.class_id


def test_decoding_does_not_alias_the_input() -> None:
    payload = make(boxes([3, 9])).encode()
    before = copy.copy(payload)
    DetectionsRecord.decode(payload).detections.xyxy[0, 0] = 99
    assert payload == before and DetectionsRecord.decode(payload).detections.xyxy[0, 0] == 1.0
