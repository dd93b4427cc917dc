"""Wire format: JSON-able, rounded, and lossless enough to rebuild ``sv.Detections``."""

from __future__ import annotations

import json

import numpy as np
import supervision as sv

from inference.wire import from_wire, to_wire


def sample(tracked: bool = True) -> sv.Detections:
    return sv.Detections(
        xyxy=np.array([[10.123, 20.456, 30.789, 40.0], [1.0, 2.0, 3.0, 4.0]], np.float32),
        confidence=np.array([0.912345, 0.5], np.float32),
        class_id=np.array([0, 5]),
        tracker_id=np.array([7, -1]) if tracked else None,
        data={"class_name": np.array(["person", "bus"])},
    )


def test_to_wire_is_json_and_rounded() -> None:
    payload = to_wire(sample())
    assert json.loads(json.dumps(payload)) == payload
    assert payload == {
        "xyxy": [[10.1, 20.5, 30.8, 40.0], [1.0, 2.0, 3.0, 4.0]],
        "confidence": [0.9123, 0.5],
        "class_id": [0, 5],
        "class_name": ["person", "bus"],
        "tracker_id": [7, -1],
    }


def test_round_trip() -> None:
    back = from_wire(json.loads(json.dumps(to_wire(sample()))))
    np.testing.assert_allclose(back.xyxy, [[10.1, 20.5, 30.8, 40.0], [1, 2, 3, 4]], atol=1e-5)
    np.testing.assert_allclose(back.confidence, [0.9123, 0.5], atol=1e-6)
    assert back.class_id.tolist() == [0, 5] and back.tracker_id.tolist() == [7, -1]
    assert back.data["class_name"].tolist() == ["person", "bus"]


def test_untracked_has_null_tracker_id() -> None:
    payload = to_wire(sample(tracked=False))
    assert payload["tracker_id"] is None
    assert from_wire(payload).tracker_id is None


def test_empty() -> None:
    payload = to_wire(sv.Detections.empty())
    assert payload["xyxy"] == [] and payload["tracker_id"] is None
    back = from_wire(payload)
    assert len(back) == 0 and back.xyxy.shape == (0, 4)
