"""Preprocessing: geometry, colour order, normalisation and layouts for mixed-size batches."""

from __future__ import annotations

import numpy as np
import pytest

from inference.manifest import ModelManifest, Preprocessing
from inference.preprocess import BufferPool, preprocess


def manifest(**pre: object) -> ModelManifest:
    return ModelManifest(
        name="m",
        version="1",
        sha256="0" * 64,
        format="yolov8",
        labels=["a"],
        input_size=(64, 64),
        preprocessing=Preprocessing(**pre),
    )


def bgr_frame(h: int, w: int, bgr: tuple[int, int, int]) -> np.ndarray:
    frame = np.empty((h, w, 3), np.uint8)
    frame[:] = bgr
    return frame


def test_letterbox_geometry_and_padding() -> None:
    wide, tall = bgr_frame(100, 200, (10, 20, 30)), bgr_frame(200, 100, (10, 20, 30))
    batch, t = preprocess([wide, tall], manifest(resize="letterbox", pad_value=114, color="rgb"))
    assert batch.shape == (2, 3, 64, 64) and batch.dtype == np.float32
    np.testing.assert_allclose(t.scale, [[0.32, 0.32], [0.32, 0.32]])
    np.testing.assert_allclose(t.pad, [[0, 16], [16, 0]])
    assert t.orig_size.tolist() == [[200, 100], [100, 200]]
    # wide image: rows 16..47 hold the picture (RGB, /255), the rest is pad 114
    np.testing.assert_allclose(batch[0, :, 32, 32], np.array([30, 20, 10]) / 255, atol=1e-6)
    np.testing.assert_allclose(batch[0, :, 5, 32], [114 / 255] * 3, atol=1e-6)
    np.testing.assert_allclose(batch[1, :, 32, 5], [114 / 255] * 3, atol=1e-6)
    np.testing.assert_allclose(
        t.to_original(np.array([[16, 24, 48, 40]], np.float32), 0), [[50, 25, 150, 75]]
    )


def test_stretch_bgr_mean_std() -> None:
    mean, std = (103.53, 116.28, 123.675), (57.375, 57.12, 58.395)
    frame = bgr_frame(30, 90, (110, 120, 130))
    batch, t = preprocess([frame], manifest(resize="stretch", color="bgr", scale=1.0, mean=mean, std=std))
    expected = (np.array([110, 120, 130]) - np.array(mean)) / np.array(std)
    np.testing.assert_allclose(batch[0, :, 10, 10], expected, rtol=1e-5)
    np.testing.assert_allclose(t.scale, [[64 / 90, 64 / 30]])
    np.testing.assert_allclose(t.pad, [[0, 0]])


def test_uint8_nhwc_rgb() -> None:
    frame = bgr_frame(64, 64, (1, 2, 3))
    batch, _ = preprocess([frame], manifest(resize="stretch", layout="nhwc", dtype="uint8", color="rgb"))
    assert batch.shape == (1, 64, 64, 3) and batch.dtype == np.uint8
    assert batch[0, 0, 0].tolist() == [3, 2, 1]


def test_float_nhwc_matches_nchw() -> None:
    frames = [np.random.default_rng(0).integers(0, 255, (50, 70, 3), dtype=np.uint8)]
    nchw, _ = preprocess(frames, manifest(layout="nchw"))
    nhwc, _ = preprocess(frames, manifest(layout="nhwc"))
    np.testing.assert_allclose(nchw.transpose(0, 2, 3, 1), nhwc, atol=1e-6)


def test_rejects_non_bgr_frames() -> None:
    with pytest.raises(ValueError, match="uint8"):
        preprocess([np.zeros((10, 10), np.uint8)], manifest())
    with pytest.raises(ValueError, match="at least one"):
        preprocess([], manifest())


def test_pooled_buffers_are_reused_and_fully_repainted() -> None:
    """A reused canvas holds the previous batch's pixels: the letterbox borders must be painted again."""
    pool = BufferPool()
    m = manifest(resize="letterbox", pad_value=114, color="rgb")
    first, _ = preprocess([bgr_frame(200, 100, (255, 255, 255))], m, pool=pool)  # tall: fills the middle
    kept = first.copy()
    pool.give(first)
    second, _ = preprocess([bgr_frame(100, 200, (0, 0, 0))], m, pool=pool)  # wide: pads top and bottom
    assert second is first  # the same float buffer came back
    fresh, _ = preprocess([bgr_frame(100, 200, (0, 0, 0))], m)
    np.testing.assert_array_equal(second, fresh)
    assert not np.array_equal(kept, fresh)


def test_orig_sizes_map_a_reduced_decode_to_published_pixels() -> None:
    """A 400x200 frame decoded at 200x100 letterboxes like the 400x200 one and maps back to it."""
    m = manifest(resize="letterbox", pad_value=114, color="rgb")
    small, t = preprocess([bgr_frame(100, 200, (10, 20, 30))], m, orig_sizes=[(400, 200)])
    full, t_full = preprocess([bgr_frame(200, 400, (10, 20, 30))], m)
    np.testing.assert_allclose(small, full, atol=1e-6)
    np.testing.assert_allclose(t.scale, [[0.16, 0.16]])
    assert t.orig_size.tolist() == [[400, 200]]
    np.testing.assert_allclose(
        t.to_original(np.array([[16, 24, 48, 40]], np.float32), 0), [[100, 50, 300, 150]]
    )


@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
@pytest.mark.parametrize("dtype", ["float32", "uint8"])
@pytest.mark.parametrize("color", ["rgb", "bgr"])
def test_every_layout_dtype_and_colour_matches_plain_numpy(layout: str, dtype: str, color: str) -> None:
    """The pooled cv2 fast paths against the obvious numpy formula on a 64x64 frame (no resize)."""
    frame = np.random.default_rng(3).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    mean, std = (10.0, 20.0, 30.0), (2.0, 4.0, 8.0)
    norm = {"scale": 0.5, "mean": mean, "std": std} if dtype == "float32" else {}
    pre = {"resize": "stretch", "layout": layout, "dtype": dtype, "color": color, **norm}
    batch, _ = preprocess([frame, frame[::-1].copy()], manifest(**pre), pool=BufferPool())
    ref = np.stack([frame, frame[::-1]])[..., [2, 1, 0] if color == "rgb" else [0, 1, 2]]
    if dtype == "float32":
        ref = (ref * 0.5 - np.array(mean)) / np.array(std)
    if layout == "nchw":
        ref = ref.transpose(0, 3, 1, 2)
    assert batch.dtype == np.dtype(dtype) and batch.shape == ref.shape
    np.testing.assert_allclose(batch, ref, rtol=1e-5, atol=1e-5)
