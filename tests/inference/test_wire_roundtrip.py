"""sv.Detections <-> the codec's columns: rounded on the wire, lossless enough to rebuild them."""

from __future__ import annotations

import numpy as np
import orjson
import supervision as sv

from inference.wire import from_columns, to_columns
from schemas.detections import DetectionColumns


def sample(tracked: bool = True) -> sv.Detections:
    return sv.Detections(
        xyxy=np.array([[10.123, 20.456, 30.789, 40.0], [1.0, 2.0, 3.0, 4.0]], np.float32),
        confidence=np.array([0.912345, 0.5], np.float32),
        class_id=np.array([0, 5]),
        tracker_id=np.array([7, -1]) if tracked else None,
        data={"class_name": np.array(["person", "bus"])},
    )


def wire_json(columns: DetectionColumns) -> dict[str, object]:
    return orjson.loads(orjson.dumps(columns.wire(), option=orjson.OPT_SERIALIZE_NUMPY))


def test_wire_is_json_and_rounded() -> None:
    assert wire_json(to_columns(sample())) == {
        "xyxy": [[10.1, 20.5, 30.8, 40.0], [1.0, 2.0, 3.0, 4.0]],
        "confidence": [0.9123, 0.5],
        "class_id": [0, 5],
        "class_name": ["person", "bus"],
        "tracker_id": [7, -1],
    }
    assert to_columns(sample()).as_lists() == wire_json(to_columns(sample()))


def test_round_trip() -> None:
    back = from_columns(to_columns(sample()))
    np.testing.assert_allclose(back.xyxy, [[10.123, 20.456, 30.789, 40.0], [1, 2, 3, 4]], atol=1e-5)
    assert back.class_id.tolist() == [0, 5] and back.tracker_id.tolist() == [7, -1]
    assert back.data["class_name"].tolist() == ["person", "bus"]


def test_untracked_has_null_tracker_id() -> None:
    columns = to_columns(sample(tracked=False))
    assert wire_json(columns)["tracker_id"] == [None, None]
    assert from_columns(columns).tracker_id is None


def test_empty() -> None:
    columns = to_columns(sv.Detections.empty())
    assert wire_json(columns)["xyxy"] == [] and columns.xyxy.shape == (0, 4)
    back = from_columns(columns)
    assert len(back) == 0 and back.xyxy.shape == (0, 4)
