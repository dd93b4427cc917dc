"""YOLO-family decoding checked end to end on hand-built ONNX graphs with known outputs."""

from __future__ import annotations

import numpy as np
import pytest

from inference.detector import Detector
from inference.manifest import infer_manifest
from inference.postprocess.common import threshold_best_class

# 200x100 frame letterboxed into 64x64: scale 0.32, image 64x32 placed at y offset 16.
FRAME = np.zeros((100, 200, 3), np.uint8)
BOX_IN = [16.0, 24.0, 48.0, 40.0]  # model-input pixels
BOX_ORIG = [50.0, 25.0, 150.0, 75.0]  # the same box in the 200x100 frame
EDGE_ORIG = [143.75, 81.25, 168.75, 100.0]  # (46, 42, 54, 50) in input pixels, clipped at the frame bottom


def yolov8_output() -> np.ndarray:
    """[1, 4 + 3, 16]: anchors as columns (cx, cy, w, h, p0, p1, p2)."""
    anchors = np.zeros((16, 7), np.float32)
    anchors[0] = [32, 32, 32, 16, 0.9, 0.05, 0.0]  # class 0, kept
    anchors[1] = [33, 32, 32, 16, 0.8, 0.0, 0.0]  # class 0, IoU 0.94 with anchor 0 -> suppressed
    anchors[2] = [32, 32, 32, 16, 0.0, 0.7, 0.0]  # same box, class 1 -> kept (class-aware NMS)
    anchors[3] = [10, 10, 4, 4, 0.0, 0.0, 0.1]  # below threshold
    anchors[4] = [50, 46, 8, 8, 0.0, 0.0, 0.6]  # class 2, runs past the frame bottom
    return anchors.T[None]


def yolov5_output() -> np.ndarray:
    """[1, 16, 5 + 3]: rows of (cx, cy, w, h, obj, p0, p1, p2); score = obj * p."""
    rows = np.zeros((16, 8), np.float32)
    rows[0] = [32, 32, 32, 16, 1.0, 0.9, 0.05, 0.0]
    rows[1] = [33, 32, 32, 16, 1.0, 0.8, 0.0, 0.0]
    rows[2] = [32, 32, 32, 16, 1.0, 0.0, 0.7, 0.0]
    rows[3] = [10, 10, 4, 4, 0.5, 0.0, 0.0, 0.4]  # 0.5 * 0.4 = 0.2 < 0.25
    rows[4] = [50, 46, 8, 8, 0.75, 0.0, 0.0, 0.8]  # 0.6
    return rows[None]


def yolo_nms_output() -> np.ndarray:
    """[1, 10, 6]: (x1, y1, x2, y2, score, class), zero-padded; NMS already done by the model."""
    rows = np.zeros((10, 6), np.float32)
    rows[0] = [*BOX_IN, 0.9, 0]
    rows[1] = [17, 24, 49, 40, 0.8, 0]  # overlaps row 0, same class: the model kept it, so do we
    rows[2] = [46, 42, 54, 50, 0.6, 2]
    return rows[None]


def check_expected(det, *, names: list[str]) -> None:
    np.testing.assert_allclose(det.xyxy, [BOX_ORIG, BOX_ORIG, EDGE_ORIG], atol=1e-4)
    np.testing.assert_allclose(det.confidence, [0.9, 0.7, 0.6], atol=1e-6)
    assert det.class_id.tolist() == [0, 1, 2]
    assert det.data["class_name"].tolist() == names
    assert det.xyxy.dtype == np.float32


def test_yolov8_parse_nms_and_letterbox(const_model) -> None:
    path = const_model({"output0": yolov8_output()}, metadata={"names": "{0: 'person', 1: 'car', 2: 'dog'}"})
    detector = Detector.from_path(path)
    assert detector.manifest.format == "yolov8"
    (det,), timings = detector.detect([FRAME])
    check_expected(det, names=["person", "car", "dog"])
    assert timings.batch_size == 1 and timings.inference_ms > 0


def test_yolov5_parse_objectness_times_class(const_model) -> None:
    detector = Detector.from_path(const_model({"output": yolov5_output()}))
    assert detector.manifest.format == "yolov5"
    (det,), _ = detector.detect([FRAME])
    check_expected(det, names=["class_0", "class_1", "class_2"])


def test_yolo_nms_rows_taken_as_is(const_model) -> None:
    detector = Detector.from_path(const_model({"output0": yolo_nms_output()}))
    assert detector.manifest.format == "yolo_nms"
    (det,), _ = detector.detect([FRAME])
    assert det.class_id.tolist() == [0, 0, 2]
    np.testing.assert_allclose(det.confidence, [0.9, 0.8, 0.6], atol=1e-6)
    np.testing.assert_allclose(det.xyxy[[0, 2]], [BOX_ORIG, EDGE_ORIG], atol=1e-4)


def test_ultralytics_end2end_metadata_means_yolo_nms(const_model) -> None:
    rows = np.zeros((1, 300, 6), np.float32)
    rows[0, 0] = [*BOX_IN, 0.9, 5]
    path = const_model({"output0": rows}, metadata={"end2end": "True"})
    manifest = infer_manifest(path, "e2e", "1")
    assert manifest.format == "yolo_nms" and len(manifest.labels) == 80
    (det,), _ = Detector(Detector.from_path(path).engine, manifest).detect([FRAME])
    assert det.data["class_name"].tolist() == ["bus"]


def test_batch_of_different_frame_sizes_maps_each_back(const_model) -> None:
    detector = Detector.from_path(const_model({"output0": yolov8_output()}))
    tall = np.zeros((200, 100, 3), np.uint8)  # letterboxed with x offset 16 instead
    square = np.zeros((64, 64, 3), np.uint8)  # no resize at all
    dets, timings = detector.detect([FRAME, tall, square])
    assert timings.batch_size == 3 and [len(d) for d in dets] == [3, 3, 3]
    np.testing.assert_allclose(dets[0].xyxy[0], BOX_ORIG, atol=1e-4)
    np.testing.assert_allclose(dets[1].xyxy[0], [0.0, 75.0, 100.0, 125.0], atol=1e-4)
    np.testing.assert_allclose(dets[2].xyxy[0], BOX_IN, atol=1e-4)


@pytest.mark.parametrize(("max_detections", "expected"), [(1, [0.9]), (2, [0.9, 0.7])])
def test_max_detections_keeps_best(const_model, max_detections: int, expected: list[float]) -> None:
    detector = Detector.from_path(const_model({"output0": yolov8_output()}), max_detections=max_detections)
    (det,), _ = detector.detect([FRAME])
    np.testing.assert_allclose(det.confidence, expected, atol=1e-6)


def test_thresholds_override_manifest(const_model) -> None:
    path = const_model({"output0": yolov8_output()})
    (strict,), _ = Detector.from_path(path, score_threshold=0.75).detect([FRAME])
    assert strict.confidence.tolist() == pytest.approx([0.9])
    (loose,), _ = Detector.from_path(path, nms_iou=0.99).detect([FRAME])  # IoU 0.94 no longer suppresses
    assert sorted(loose.confidence.tolist()) == pytest.approx([0.6, 0.7, 0.8, 0.9])


def test_nothing_above_threshold_gives_empty_detections(const_model) -> None:
    (det,), _ = Detector.from_path(const_model({"output0": np.zeros((1, 84, 32), np.float32)})).detect(
        [FRAME]
    )
    assert len(det) == 0 and det.xyxy.shape == (0, 4)


def nanodet_outputs() -> dict[str, np.ndarray]:
    """64x64 input: strides 8/16/32 -> 64/16/4 cells; 80 class scores + 4 sides x 11 bins per cell."""
    outputs: dict[str, np.ndarray] = {}
    for cells in (4, 64, 16):  # deliberately not in stride order, like the real export
        outputs[f"cls_{cells}"] = np.zeros((1, cells, 80), np.float32)
        outputs[f"reg_{cells}"] = np.zeros((1, cells, 44), np.float32)

    def peaked(bins: list[int]) -> np.ndarray:
        logits = np.zeros((4, 11), np.float32)
        logits[np.arange(4), bins] = 40.0  # softmax ~ one-hot: expected bin index == bins
        return logits.reshape(-1)

    # stride 8, cell 9 -> grid (1, 1), centre (12, 12); distances (2, 1, 3, 4) bins * 8
    outputs["cls_64"][0, 9, 2] = 0.9
    outputs["reg_64"][0, 9] = peaked([2, 1, 3, 4])
    # stride 16, cell 6 -> grid (2, 1), centre (40, 24); distances (1, 1, 1, 2) bins * 16
    outputs["cls_16"][0, 6, 0] = 0.8
    outputs["reg_16"][0, 6] = peaked([1, 1, 1, 2])
    return outputs


def test_nanodet_distribution_decoding(const_model) -> None:
    detector = Detector.from_path(const_model(nanodet_outputs(), input_name="input_1:0"))
    assert detector.manifest.format == "nanodet" and detector.manifest.preprocessing.resize == "stretch"
    frame = np.zeros((128, 256, 3), np.uint8)  # stretch: x scale 0.25, y scale 0.5
    (det,), _ = detector.detect([frame])
    assert det.class_id.tolist() == [2, 0]
    np.testing.assert_allclose(det.confidence, [0.9, 0.8], atol=1e-6)
    expected_in = np.array([[12 - 16, 12 - 8, 12 + 24, 12 + 32], [40 - 16, 24 - 16, 40 + 16, 24 + 32]], float)
    expected = np.clip(expected_in / [0.25, 0.5, 0.25, 0.5], 0, [256, 128, 256, 128])
    np.testing.assert_allclose(det.xyxy, expected, atol=1e-3)


@pytest.mark.parametrize(
    ("outputs", "input_name"),
    [
        ({"output0": np.zeros((1, 16, 8), np.float32)}, "images"),  # yolov5
        ({"output0": np.zeros((1, 10, 6), np.float32)}, "images"),  # yolo_nms
        ({k: np.zeros_like(v) for k, v in nanodet_outputs().items()}, "input_1:0"),  # nanodet
    ],
)
def test_every_format_handles_empty_batches(const_model, outputs, input_name) -> None:
    detector = Detector.from_path(const_model(outputs, input_name=input_name))
    dets, _ = detector.detect([FRAME, FRAME])
    assert [len(d) for d in dets] == [0, 0]


def test_sparse_threshold_equals_the_dense_best_class() -> None:
    """``threshold_best_class`` (flat compare + flatnonzero) against the plain max/argmax over every anchor,
    with ties between classes and scores exactly at the threshold."""
    rng = np.random.default_rng(7)
    scores = (rng.random((3, 500, 20), dtype=np.float32) ** 40).astype(np.float32)
    scores[0, 10, [3, 7]] = 0.8  # tie: the lower class id wins, as with argmax
    scores[1, 20, 5] = 0.5  # exactly at the threshold: not above it
    scores[1, 20, :5] = 0.0
    scores[1, 20, 6:] = 0.0
    best = scores.max(axis=-1)
    b, a = np.nonzero(best > 0.5)
    dense = (b, a, best[b, a], scores[b, a].argmax(axis=-1))
    sparse = threshold_best_class(scores, 0.5)
    assert 50 < len(sparse[0]) < 1000 and (0, 10) in zip(*sparse[:2], strict=True)
    assert (1, 20) not in zip(*sparse[:2], strict=True)
    for x, y in zip(sparse, dense, strict=True):
        np.testing.assert_array_equal(x, y)
    assert sparse[3][(sparse[0] == 0) & (sparse[1] == 10)].tolist() == [3]
