"""Reduced-scale JPEG decoding: header checks stay on the published size, boxes on the original pixels."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import simplejpeg
from confluent_kafka import Message

from inference.detector import Detector
from inference.frames import jpeg_scaled_size, load_image
from inference.preprocess import BufferPool
from schemas.errors import ContractError
from schemas.frame import FrameMeta


def record(
    image: np.ndarray, encoding: str = "jpeg", size: tuple[int, int] | None = None
) -> tuple[Message, FrameMeta]:
    if encoding == "jpeg":
        payload = simplejpeg.encode_jpeg(image, quality=90, colorspace="BGR")
    else:
        payload = cv2.imencode(".png", image)[1].tobytes()
    w, h = size or (image.shape[1], image.shape[0])
    return Message(value=payload), FrameMeta("cam", 1, 1, w, h, encoding)


def pattern(h: int, w: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x % 256, y % 256, (x + y) % 256], axis=-1).astype(np.uint8)


@pytest.mark.parametrize(
    ("size", "min_size", "expected"),
    [
        ((1920, 1080), (640, 360), (960, 540)),  # 1/4 would be 480x270: too small
        ((1920, 1080), (480, 270), (480, 270)),  # exactly 1/4 is enough, 1/8 is not
        ((768, 576), (416, 416), (768, 576)),  # 1/2 is 384x288 < 416: full size
        ((768, 576), (96, 72), (96, 72)),  # 1/8
        ((1001, 999), (500, 499), (501, 500)),  # libjpeg rounds scaled sizes up
        ((640, 480), (2000, 2000), (640, 480)),  # never upscales
    ],
)
def test_only_power_of_two_scales_that_cover_min_size(size, min_size, expected) -> None:
    assert jpeg_scaled_size(*size, min_size) == expected


def test_load_image_decodes_jpeg_smaller_but_checks_the_published_size() -> None:
    msg, meta = record(pattern(1080, 1920))
    full = load_image(msg, meta, None, 1 << 24)
    assert full.shape == (1080, 1920, 3)
    small = load_image(msg, meta, None, 1 << 24, min_size=(640, 360))
    assert small.shape == (540, 960, 3)
    # DCT scaling is a proper downscale of the same picture
    area = cv2.resize(full, (960, 540), interpolation=cv2.INTER_AREA)
    assert np.abs(small.astype(int) - area).mean() < 4

    msg, wrong = record(pattern(1080, 1920), size=(1280, 720))
    with pytest.raises(ContractError, match="image is 1920x1080 but headers say 1280x720"):
        load_image(msg, wrong, None, 1 << 24, min_size=(640, 360))


def test_png_always_decodes_full_size() -> None:
    msg, meta = record(pattern(200, 300), "png")
    image = load_image(msg, meta, None, 1 << 24, min_size=(10, 10))
    assert image.shape == (200, 300, 3)
    np.testing.assert_array_equal(image, pattern(200, 300))


def test_decode_size_per_resize_mode(nanodet_path, yolo11n_path) -> None:
    nanodet = Detector.from_path(nanodet_path)  # stretch to 416x416
    assert nanodet.decode_size(768, 576) == (416, 416)
    assert nanodet.decode_size(320, 240) == (320, 240)  # never more than the frame
    yolo_square = Detector.from_path(yolo11n_path, dynamic_input=False)  # letterbox to 640
    assert yolo_square.decode_size(1920, 1080) == (640, 360)
    yolo = Detector.from_path(yolo11n_path)  # dynamic H/W: same scale, smaller canvas
    assert yolo.dynamic_input and yolo.decode_size(1920, 1080) == (640, 360)
    assert yolo.decode_size(768, 576) == (640, 480)


def test_nanodet_boxes_from_a_half_scale_decode_land_on_original_pixels(nanodet_path, bus_bgr) -> None:
    """A 2x bus published at 1620x2160, decoded at 810x1080: boxes must be ~2x those of the plain bus."""
    detector = Detector.from_path(nanodet_path)
    big = cv2.resize(bus_bgr, (1620, 2160), interpolation=cv2.INTER_CUBIC)
    msg, meta = record(big)
    min_size = detector.decode_size(meta.width, meta.height)
    image = load_image(msg, meta, None, 1 << 24, min_size=min_size)
    assert image.shape[:2] == (1080, 810)

    (scaled,), _ = detector.detect([image], orig_sizes=[(meta.width, meta.height)])
    (plain,), _ = detector.detect([bus_bgr])
    assert len(scaled) >= 4 and len(plain) >= 4
    for box, cls in zip(plain.xyxy, plain.class_id, strict=True):
        same_class = scaled.xyxy[scaled.class_id == cls]
        err = np.abs(same_class - 2 * box).max(axis=1).min()
        assert err < 12, f"class {cls}: nearest 2x box is {err:.1f} px off"
    assert scaled.xyxy[:, [0, 2]].max() > 1000  # really in 1620-wide pixels, not the decoded 810


def test_pooled_decode_reuses_buffers_and_returns_them_on_errors() -> None:
    pool = BufferPool()
    first_msg, meta = record(pattern(120, 160))
    first = load_image(first_msg, meta, None, 1 << 24, pool=pool)
    expected_first = load_image(first_msg, meta, None, 1 << 24)
    np.testing.assert_array_equal(first, expected_first)
    pool.give(first)
    second_msg, _ = record(pattern(120, 160)[::-1].copy())
    second = load_image(second_msg, meta, None, 1 << 24, pool=pool)
    assert np.shares_memory(first, second)  # the same pages, no fresh allocation
    np.testing.assert_array_equal(second, load_image(second_msg, meta, None, 1 << 24))

    pool.give(second)
    broken = Message(value=second_msg.value()[:200])  # valid header, truncated scan
    with pytest.raises(ContractError, match="undecodable jpeg"):
        load_image(broken, meta, None, 1 << 24, pool=pool)
    assert np.shares_memory(pool.take((120, 160, 3), np.uint8), second)  # given back despite the error
