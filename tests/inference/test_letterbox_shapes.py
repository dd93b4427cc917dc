"""Dynamic-H/W models run each frame at its smallest stride-aligned letterbox; boxes map back exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from inference.detector import Detector
from inference.preprocess import dynamic_input_size

BOX_IN = [16.0, 8.0, 48.0, 24.0]  # model-input pixels, the same whatever the input size


def yolov8_one_box() -> np.ndarray:
    """[1, 4 + 2, 8]: one class-0 anchor at BOX_IN (cx, cy, w, h), score 0.9."""
    anchors = np.zeros((8, 6), np.float32)
    anchors[0] = [32, 16, 32, 16, 0.9, 0.0]
    return anchors.T[None]


def make_dynamic(path: Path) -> Path:
    """The same graph with symbolic input height and width, as an Ultralytics ``dynamic=True`` export."""
    model = onnx.load(str(path))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "height", "width"
    out = path.with_name(path.stem + "_dynamic.onnx")
    onnx.save(model, str(out))
    return out


@pytest.fixture
def dynamic_detector(const_model) -> Detector:
    path = const_model({"output0": yolov8_one_box()}, metadata={"imgsz": "[64, 64]"})
    detector = Detector.from_path(make_dynamic(path), max_batch=2)
    assert detector.dynamic_input and detector.manifest.input_size == (64, 64)
    return detector


@pytest.mark.parametrize(
    ("size", "target", "expected"),
    [
        ((768, 576), (640, 640), (640, 480)),
        ((1920, 1080), (640, 640), (640, 384)),  # 640x360 rounded up to the stride
        ((640, 640), (640, 640), (640, 640)),
        ((200, 100), (64, 64), (64, 32)),
        ((100, 200), (64, 64), (32, 64)),
        ((10, 1000), (640, 640), (32, 640)),
    ],
)
def test_smallest_stride_aligned_letterbox(size, target, expected) -> None:
    assert dynamic_input_size(size, target) == expected


def test_frames_grouped_by_shape_in_order_and_chunked(dynamic_detector: Detector) -> None:
    wide, tall, odd = (np.full((h, w, 3), 50, np.uint8) for w, h in [(200, 100), (100, 200), (200, 90)])
    frames = [wide, tall, odd, wide, tall]
    prepared = dynamic_detector.prepare(frames)
    assert [p.indices.tolist() for p in prepared] == [[0, 2], [3], [1, 4]]
    assert [p.tensor.shape for p in prepared] == [(2, 3, 32, 64), (1, 3, 32, 64), (2, 3, 64, 32)]
    assert [p.input_size for p in prepared] == [(64, 32), (64, 32), (32, 64)]
    # 200x90 -> 64x29 with one pad row on top (114 / 255), then picture (50 / 255)
    np.testing.assert_allclose(prepared[0].tensor[1, :, 0, 10], [114 / 255] * 3, atol=1e-6)
    np.testing.assert_allclose(prepared[0].tensor[1, :, 1, 10], [50 / 255] * 3, atol=1e-6)
    for p in prepared:
        p.release()


def test_boxes_map_back_to_each_frames_original_pixels(dynamic_detector: Detector) -> None:
    sizes = [(200, 100), (100, 200), (200, 90), (200, 100)]
    frames = [np.zeros((h, w, 3), np.uint8) for w, h in sizes]
    dets, timings = dynamic_detector.detect(frames)
    assert timings.batch_size == 4 and len(dets) == 4
    # Worked by hand: orig = (input - pad) / (resized / original)
    expected = [
        [50, 25, 150, 75],  # 200x100 -> 64x32 in 64x32, no pad, scale 0.32
        [50, 25, 100, 75],  # 100x200 -> 32x64 in 32x64: x2 = 48/0.32 = 150 clipped to the width 100
        [50, 7 * 90 / 29, 150, 23 * 90 / 29],  # 200x90 -> 64x29, pad y 1
        [50, 25, 150, 75],
    ]
    for det, box in zip(dets, expected, strict=True):
        np.testing.assert_allclose(det.xyxy, [box], rtol=1e-5)
        assert det.confidence.tolist() == pytest.approx([0.9])


def test_reduced_decode_with_orig_sizes(dynamic_detector: Detector) -> None:
    """A 400x200 frame decoded at 200x100 still groups and maps by its published size."""
    (det,), _ = dynamic_detector.detect([np.zeros((100, 200, 3), np.uint8)], orig_sizes=[(400, 200)])
    np.testing.assert_allclose(det.xyxy, [[100, 50, 300, 150]], rtol=1e-5)


def test_fixed_shape_models_keep_the_square(nanodet_path) -> None:
    detector = Detector.from_path(nanodet_path)
    assert not detector.dynamic_input
    (p,) = detector.prepare([np.zeros((576, 768, 3), np.uint8)])
    assert p.tensor.shape == (1, 3, 416, 416)
    p.release()


def test_yolo11n_runs_at_640x480_and_maps_its_own_output(yolo11n_path) -> None:
    """The real YOLO11n graph at the smallest letterbox: 6300 anchors, boxes rebuilt by hand from them."""
    detector = Detector.from_path(yolo11n_path, score_threshold=0.0, max_detections=5)
    frame = np.random.default_rng(1).integers(0, 255, (576, 768, 3), dtype=np.uint8)
    (p,) = detector.prepare([frame])
    assert p.tensor.shape == (1, 3, 480, 640)
    outputs = detector.infer(p)
    p.release()
    assert outputs[0].shape == (1, 84, 80 * 60 + 40 * 30 + 20 * 15)
    (det,) = detector.finish(p, outputs)
    assert len(det) == 5

    raw = outputs[0][0]
    best = raw[4:].max(axis=0)
    top = int(best.argmax())
    cx, cy, w, h = raw[:4, top]
    scale = 640 / 768  # no padding: 768x576 fills 640x480 exactly
    by_hand = np.clip(np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]) / scale, 0, [768, 576] * 2)
    np.testing.assert_allclose(det.xyxy[0], by_hand, rtol=1e-5, atol=1e-3)
    assert det.confidence[0] == pytest.approx(best[top])
