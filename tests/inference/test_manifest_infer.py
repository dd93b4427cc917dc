"""Manifest inference from the models themselves, and the manifest's JSON round trip."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from inference.labels import COCO80, coco91_labels
from inference.manifest import NANODET_MEAN, NANODET_STD, ModelManifest, infer_manifest


def test_nanodet_manifest(nanodet_path) -> None:
    m = infer_manifest(nanodet_path, "nanodet", "3")
    assert (m.name, m.version, m.format) == ("nanodet", "3", "nanodet")
    assert m.input_size == (416, 416) and m.input_name == "input_1:0" and m.dynamic_batch
    p = m.preprocessing
    assert (p.resize, p.color, p.scale, p.layout, p.dtype) == ("stretch", "bgr", 1.0, "nchw", "float32")
    assert p.mean == NANODET_MEAN and p.std == NANODET_STD
    assert m.labels == list(COCO80) and len(m.output_names) == 6
    assert len(m.sha256) == 64


def test_ssd_manifest(ssd_path) -> None:
    m = infer_manifest(ssd_path, "ssd", "1")
    assert m.format == "ssd_tf" and m.input_size == (300, 300)
    assert (m.preprocessing.layout, m.preprocessing.dtype, m.preprocessing.color) == ("nhwc", "uint8", "rgb")
    assert m.labels == coco91_labels() and m.labels[1] == "person" and m.labels[90] == "toothbrush"


def test_overrides_win(yolo11n_path) -> None:
    m = infer_manifest(
        yolo11n_path, "y", "1", labels=list(COCO80), score_threshold=0.5, preprocessing={"pad_value": 0}
    )
    assert m.labels[0] == "person" and m.score_threshold == 0.5
    assert m.preprocessing.pad_value == 0 and m.preprocessing.resize == "letterbox"


@pytest.mark.parametrize(
    ("shape", "fmt", "n_labels"),
    [
        ((1, 84, 300), "yolov8", 80),
        ((1, 300, 85), "yolov5", 80),
        ((1, 100, 6), "yolo_nms", 80),
        ((1, 9, 300), "yolov8", 5),
    ],
)
def test_single_output_layouts(const_model, shape, fmt, n_labels) -> None:
    m = infer_manifest(const_model({"output0": np.zeros(shape, np.float32)}), "x", "1")
    assert m.format == fmt and len(m.labels) == n_labels
    assert m.input_size == (64, 64) and m.preprocessing.resize == "letterbox"


def test_nanodet_layout_from_outputs(const_model) -> None:
    outputs = {}
    for cells in (64, 16, 4):  # 64x64 input at strides 8/16/32
        outputs[f"cls{cells}"] = np.zeros((1, cells, 80), np.float32)
        outputs[f"reg{cells}"] = np.zeros((1, cells, 44), np.float32)
    m = infer_manifest(const_model(outputs), "x", "1")
    assert m.format == "nanodet" and m.labels == list(COCO80)


def test_unknown_layout_is_an_error(const_model) -> None:
    with pytest.raises(ValueError, match="format"):
        infer_manifest(const_model({"a": np.zeros((1, 5), np.float32)}), "x", "1")


def test_json_round_trip_and_validation(nanodet_path) -> None:
    m = infer_manifest(nanodet_path, "nanodet", "1")
    assert ModelManifest.model_validate_json(m.to_json()) == m
    with pytest.raises(ValidationError):
        ModelManifest.model_validate(m.model_dump() | {"format": "yolov9"})
    with pytest.raises(ValidationError):
        ModelManifest.model_validate(m.model_dump() | {"unknown_field": 1})
