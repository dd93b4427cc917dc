"""Camera health statistics on real frames of the sample video: covered (black), out of focus
(blurred) and moved (shifted) frames against the scene as it is, and the decoder's cadence."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from decoders.health import HealthMonitor
from decoders.image_stats import Gray, gray_copy, measure, thumbnail, usable_as_reference
from decoders.reference import decode_png, encode_png, load_image
from decoders.settings import HealthSettings


@pytest.fixture(scope="module")
def frames(vtest_path: Path) -> list[av.VideoFrame]:
    """Every 50th frame of the sample video's first 600: people walk, the camera stays."""
    out = []
    with av.open(str(vtest_path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i % 50 == 0:
                out.append(frame)
            if i >= 600:
                break
    return out


def _frame(image: np.ndarray) -> av.VideoFrame:
    """A decoder frame (yuv420p, as the sample's) from a grey image."""
    rgb = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    return av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")


def _full_gray(frame: av.VideoFrame) -> Gray:
    return frame.to_ndarray(format="gray")


def _reference(frames: list[av.VideoFrame]) -> Gray:
    return thumbnail(gray_copy(frames[0], 160))


def test_the_scene_as_it_is_looks_healthy(frames: list[av.VideoFrame]) -> None:
    ref = _reference(frames)
    for frame in frames[1:]:
        stats = measure(gray_copy(frame, 160), ref)
        assert 30 < stats.contrast < 80
        assert 60 < stats.brightness < 200
        assert stats.sharpness > 500
        assert stats.similarity is not None and stats.similarity > 0.85, "people walking is no move"


def test_a_covered_camera_is_uniform(frames: list[av.VideoFrame]) -> None:
    black = _frame(np.zeros_like(_full_gray(frames[3])))
    stats = measure(gray_copy(black, 160), _reference(frames))
    assert stats.contrast < 1 and stats.brightness < 20 and stats.sharpness < 1
    assert stats.similarity == 0.0, "a uniform image correlates with nothing"
    white = _frame(np.full_like(_full_gray(frames[3]), 250))
    assert measure(gray_copy(white, 160)).brightness > 240
    thresholds = {"min_contrast": 10.0, "brightness": (16.0, 240.0)}
    assert not usable_as_reference(measure(gray_copy(black, 160)), **thresholds)
    assert usable_as_reference(measure(gray_copy(frames[3], 160)), **thresholds)


def test_an_out_of_focus_camera_loses_its_edges(frames: list[av.VideoFrame]) -> None:
    sharp = measure(gray_copy(frames[3], 160))
    blurred = _frame(cv2.GaussianBlur(_full_gray(frames[3]), (0, 0), 6))
    soft = measure(gray_copy(blurred, 160), _reference(frames))
    assert soft.sharpness < sharp.sharpness / 10
    assert soft.sharpness < 100, "under the documented default `sharpness_below`"
    assert abs(soft.brightness - sharp.brightness) < 5, "blur keeps the exposure"
    assert soft.similarity is not None and soft.similarity > 0.8, "a blurred scene has not moved"


@pytest.mark.parametrize(
    "how",
    ["shift", "crop"],
)
def test_a_moved_camera_no_longer_matches_the_reference(frames: list[av.VideoFrame], how: str) -> None:
    gray = _full_gray(frames[3])
    h, w = gray.shape
    if how == "shift":  # turned: the scene slides by 60 x 30 pixels
        moved = cv2.warpAffine(
            gray, np.float32([[1, 0, 60], [0, 1, 30]]), (w, h), borderMode=cv2.BORDER_REFLECT
        )
    else:  # zoomed or pushed sideways: a fifth of the view is gone
        moved = cv2.resize(gray[:, w // 5 :], (w, h))
    stats = measure(gray_copy(_frame(moved), 160), _reference(frames))
    assert stats.similarity is not None and stats.similarity < 0.75
    assert stats.sharpness > 300 and stats.contrast > 30, "still a sharp, uncovered picture"


def test_the_monitor_measures_once_a_second_and_takes_a_good_reference(
    frames: list[av.VideoFrame],
) -> None:
    monitor = HealthMonitor("cam", HealthSettings(every_s=1.0))
    black = _frame(np.zeros_like(_full_gray(frames[0])))
    first = monitor.inspect(black, 0.0)
    assert first is not None and first.similarity is None and monitor.reference is None, "no black reference"
    assert monitor.inspect(frames[0], 0.5) is None, "not due yet"
    taken = monitor.inspect(frames[0], 1.0)
    assert taken is not None and taken.similarity == 1.0 and monitor.reference_id is not None
    later = monitor.inspect(frames[5], 2.0)
    assert later is not None and later.similarity is not None and later.similarity > 0.85
    assert monitor.inspect(frames[5], 0.0) is not None, "a looped file starts over"
    record = monitor.stats_record(later, 42, 1_700_000_000_000_000_000)
    assert record.kind == "stats" and record.seq == 42 and record.reference_id == monitor.reference_id
    offline = monitor.offline_record(12.5, "stream ended", at_ns=5)
    assert offline.kind == "offline" and offline.offline_s == 12.5


def test_a_reference_from_a_file_is_fixed(frames: list[av.VideoFrame], tmp_path: Path) -> None:
    path = tmp_path / "ref.png"
    cv2.imwrite(str(path), _full_gray(frames[0]))
    assert load_image(path).shape == (48, 64)
    monitor = HealthMonitor("cam", HealthSettings(reference=path))
    stats = monitor.inspect(frames[4], 0.0)
    assert stats is not None and stats.similarity is not None and stats.similarity > 0.85
    image = load_image(path)
    assert np.array_equal(decode_png(encode_png(image)), image)


def test_the_cost_benchmark_runs(vtest_path: Path) -> None:
    from sightline.bench.camera_health import run

    result = run(vtest_path, 12, 160, 1)
    assert result["frames"] == 12 and result["size"] == [768, 576]
    assert 0 < result["inspect_ms"] < result["jpeg_encode_ms"] * 5  # type: ignore[operator]
