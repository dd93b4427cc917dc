"""Real models from shared/models on real media: known detections, batching and output shapes."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from inference.detector import Detector
from inference.engines import OrtEngine
from inference.manifest import infer_manifest
from inference.preprocess import preprocess


@pytest.fixture(scope="module")
def nanodet(nanodet_path) -> Detector:
    return Detector.from_path(nanodet_path, engine_options={"threads": 2})


def names(det) -> Counter[str]:
    return Counter(det.data["class_name"].tolist())


def test_nanodet_finds_bus_and_people_in_original_pixels(nanodet: Detector, bus_bgr: np.ndarray) -> None:
    (det,), timings = nanodet.detect([bus_bgr])
    found = names(det)
    assert found["bus"] >= 1 and found["person"] >= 4
    h, w = bus_bgr.shape[:2]
    bus = det[det.data["class_name"] == "bus"]
    x1, y1, x2, y2 = bus.xyxy[0]
    assert (x2 - x1) * (y2 - y1) > 0.35 * w * h  # the bus fills much of the photo
    assert x2 > 0.9 * w and y2 > 0.6 * h  # 810x1080 pixels, not 416x416 model input
    assert det.xyxy.max() <= max(w, h) and det.xyxy.min() >= 0
    assert float(bus.confidence[0]) == pytest.approx(0.78, abs=0.03)  # README reference value
    assert timings.preprocess_ms > 0 and timings.inference_ms > 0


def test_nanodet_on_vtest_frame_400_finds_people(nanodet: Detector, vtest_frames) -> None:
    (det,), _ = nanodet.detect([vtest_frames[400]])
    found = names(det)
    assert found["person"] >= 2
    assert found["car"] + found["truck"] >= 1  # the parked van / car


def test_nanodet_batch_equals_single_runs(nanodet: Detector, bus_bgr, vtest_frames) -> None:
    frames = [bus_bgr, vtest_frames[400], vtest_frames[390], bus_bgr[:540, :405].copy()]
    batched, timings = nanodet.detect(frames)
    assert timings.batch_size == 4
    for frame, det in zip(frames, batched, strict=True):
        (single,), _ = nanodet.detect([frame])
        assert det.class_id.tolist() == single.class_id.tolist()
        np.testing.assert_allclose(det.xyxy, single.xyxy, atol=1e-2)


def test_nanodet_rgb_scaling_is_worse(nanodet_path, bus_bgr) -> None:
    """Guards the manifest's BGR mean/std: the README says RGB/255 gives clearly worse results."""
    good = infer_manifest(nanodet_path, "nanodet", "1")
    bad = infer_manifest(
        nanodet_path,
        "nanodet",
        "1",
        preprocessing={"color": "rgb", "scale": 1 / 255, "mean": (0, 0, 0), "std": (1, 1, 1)},
    )
    engine = OrtEngine(nanodet_path)
    (good_det,), _ = Detector(engine, good).detect([bus_bgr])
    (bad_det,), _ = Detector(engine, bad).detect([bus_bgr])
    assert good_det.confidence.sum() > bad_det.confidence.sum() + 1.0


def test_ssd_person_model_finds_people(ssd_path, bus_bgr) -> None:
    manifest = infer_manifest(ssd_path, "ssdlite-person", "1", labels=["person"], class_offset=1)
    assert manifest.format == "ssd_tf" and manifest.preprocessing.dtype == "uint8"
    (det,), _ = Detector(OrtEngine(ssd_path), manifest).detect([bus_bgr])
    assert len(det) >= 2 and set(det.class_id.tolist()) == {0}
    assert set(det.data["class_name"].tolist()) == {"person"}
    heights = det.xyxy[:, 3] - det.xyxy[:, 1]
    assert heights.min() > 200  # people in bus.jpg are ~450 px tall in original pixels


def test_yolo11n_untrained_shapes_batch_1_and_3(yolo11n_path) -> None:
    manifest = infer_manifest(yolo11n_path, "yolo11n", "1")
    assert manifest.format == "yolov8"
    assert manifest.input_size == (640, 640)
    pre = manifest.preprocessing
    assert (pre.resize, pre.color, pre.pad_value, pre.layout) == ("letterbox", "rgb", 114, "nchw")
    assert pre.scale == pytest.approx(1 / 255)
    assert manifest.labels[:3] == ["0", "1", "2"] and len(manifest.labels) == 80  # metadata names win
    engine = OrtEngine(yolo11n_path, threads=2)
    frames = [
        np.full((480, 640, 3), 90, np.uint8),
        np.zeros((720, 1280, 3), np.uint8),
        np.zeros((300, 200, 3), np.uint8),
    ]
    for count in (1, 3):
        batch, _ = preprocess(frames[:count], manifest)
        (out,) = engine.run(batch)
        assert out.shape == (count, 84, 8400)
    dets, timings = Detector(engine, manifest).detect(frames)
    assert len(dets) == 3 and timings.batch_size == 3
