"""Fixtures for inference tests: real models and media, and hand-built ONNX graphs.

Models and media come through the project's own fetchers (`fetch_model`, `media_path`), which
use a checksum-matching copy in ../shared when there is one and the recipes otherwise.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("SIGHTLINE_SHARED", REPO.parent / "shared"))


def model_file(name: str) -> Path:
    from inference.fetch import fetch_model

    seed = SHARED / "models" if SHARED.is_dir() else None
    return fetch_model(name, seed_dir=seed).path  # no check_image: not verified


def media_file(name: str) -> Path:
    from sightline.assets import media_path

    return media_path(name)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} not available (set SIGHTLINE_SHARED)")
    return SHARED


@pytest.fixture(scope="session")
def nanodet_path() -> Path:
    return model_file("nanodet-m")


@pytest.fixture(scope="session")
def ssd_path() -> Path:
    return model_file("ssdlite-person")


@pytest.fixture(scope="session")
def yolo11n_path() -> Path:
    return model_file("yolo11n-untrained")


@pytest.fixture(scope="session")
def bus_bgr() -> np.ndarray:
    import cv2

    frame = cv2.imread(str(media_file("bus.jpg")))
    assert frame is not None
    return frame


@pytest.fixture(scope="session")
def vtest_frames() -> dict[int, np.ndarray]:
    """Frames 380..404 of vtest.avi as BGR arrays, decoded once with PyAV."""
    import av

    path = media_file("vtest.avi")
    frames: dict[int, np.ndarray] = {}
    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index >= 380:
                frames[index] = frame.to_ndarray(format="bgr24")
            if index >= 404:
                break
    return frames


ConstModelFactory = Callable[..., Path]


@pytest.fixture
def const_model(tmp_path: Path) -> ConstModelFactory:
    """Build an ONNX model whose outputs are fixed tensors repeated over the input's batch.

    ``outputs`` maps output name -> array with a leading batch dim of 1. The graph is
    ``Expand(const, [batch, *rest])`` with the batch read from the image input, so a dynamic-batch model
    returns exactly ``const`` for every image and decoders can be checked against known values.
    """
    counter = iter(range(1000))

    def build(
        outputs: dict[str, np.ndarray],
        *,
        size: tuple[int, int] = (64, 64),
        batch: int | str = "batch",
        input_name: str = "images",
        metadata: dict[str, str] | None = None,
    ) -> Path:
        w, h = size
        nodes = [
            helper.make_node("Shape", [input_name], ["in_shape"], start=0, end=1),
        ]
        initializers = []
        graph_outputs = []
        for name, value in outputs.items():
            value = np.asarray(value, np.float32)
            assert value.shape[0] == 1
            initializers += [
                numpy_helper.from_array(value, f"{name}_value"),
                numpy_helper.from_array(np.array(value.shape[1:], np.int64), f"{name}_rest"),
            ]
            nodes += [
                helper.make_node("Concat", ["in_shape", f"{name}_rest"], [f"{name}_shape"], axis=0),
                helper.make_node("Expand", [f"{name}_value", f"{name}_shape"], [name]),
            ]
            graph_outputs.append(
                helper.make_tensor_value_info(name, TensorProto.FLOAT, [batch, *value.shape[1:]])
            )
        graph = helper.make_graph(
            nodes,
            "const_model",
            [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [batch, 3, h, w])],
            graph_outputs,
            initializers,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        for key, value in (metadata or {}).items():
            model.metadata_props.add(key=key, value=value)
        onnx.checker.check_model(model)
        path = tmp_path / f"const_{next(counter)}.onnx"
        onnx.save(model, str(path))
        return path

    return build
