"""Engines: fixed-batch splitting/padding, provider checks, and a clear TensorRT error without it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from inference.detector import Detector
from inference.engines import (
    Engine,
    OrtEngine,
    TensorRTEngine,
    TensorRTUnavailable,
    engine_options,
    make_engine,
)
from inference.engines.ort import available_cpus


def out_rows() -> np.ndarray:
    rows = np.zeros((1, 10, 6), np.float32)
    rows[0, 0] = [16, 24, 48, 40, 0.9, 3]
    return rows


@pytest.mark.parametrize("fixed", [1, 2])
def test_fixed_batch_models_take_any_batch(const_model, fixed: int) -> None:
    engine = OrtEngine(const_model({"out": out_rows()}, batch=fixed))
    assert isinstance(engine, Engine) and engine.max_batch == fixed
    (out,) = engine.run(np.zeros((5, 3, 64, 64), np.float32))  # 5 = split (and padded for batch 2)
    assert out.shape == (5, 10, 6)
    np.testing.assert_array_equal(out, np.repeat(out_rows(), 5, axis=0))


def test_detector_chunks_by_engine_max_batch(const_model) -> None:
    detector = Detector.from_path(const_model({"out": out_rows()}, batch=1))
    frames = [np.zeros((64, 64, 3), np.uint8)] * 3
    dets, timings = detector.detect(frames)
    assert [d.class_id.tolist() for d in dets] == [[3], [3], [3]] and timings.batch_size == 3


def test_dynamic_batch_respects_max_batch(const_model) -> None:
    engine = OrtEngine(const_model({"out": out_rows()}), max_batch=2, threads=1)
    assert engine.max_batch == 2 and engine.providers == ["CPUExecutionProvider"]
    assert engine.run(np.zeros((5, 3, 64, 64), np.float32))[0].shape == (5, 10, 6)


def test_make_engine_kinds(const_model) -> None:
    path = const_model({"out": out_rows()})
    assert isinstance(make_engine("cpu", path), OrtEngine)
    assert isinstance(make_engine("ort", path, provider="cpu"), OrtEngine)
    with pytest.raises(ValueError, match="unknown engine kind"):
        make_engine("onnx", path)  # type: ignore[arg-type]


def test_make_engine_takes_one_options_dict_for_every_kind(const_model, tmp_path: Path) -> None:
    """The worker passes the same settings-derived options whatever the kind; each engine takes its own."""
    path = const_model({"out": out_rows()})
    options = {"threads": 1, "max_batch": 3, "device_id": 0, "fp16": True, "cache_dir": tmp_path}
    engine = make_engine("cpu", path, **options, opt_batch=2)
    assert isinstance(engine, OrtEngine) and engine.max_batch == 3
    if importlib.util.find_spec("tensorrt") is None:
        with pytest.raises(TensorRTUnavailable):  # not a TypeError about ``threads``
            make_engine("tensorrt", path, **options)


def test_engine_options_from_settings(const_model, tmp_path: Path) -> None:
    from inference.settings import InferenceSettings

    settings = InferenceSettings(max_batch=6, threads=1, device_id=1, fp16=False, engine_cache_dir=tmp_path)
    assert engine_options(settings, "cpu") == {"threads": 1, "spin": True}
    gpu = engine_options(settings, "tensorrt", max_batch=12)
    assert gpu == {
        "threads": 1,
        "spin": True,
        "device_id": 1,
        "fp16": False,
        "cache_dir": tmp_path,
        "max_batch": 12,
    }
    assert engine_options(settings, "cuda")["max_batch"] == 6
    pinned = settings.model_copy(update={"engine_max_batch": 32})
    assert engine_options(pinned, "ort-tensorrt", max_batch=12)["max_batch"] == 32
    engine = make_engine("cpu", const_model({"out": out_rows()}), **engine_options(settings, "cpu"))
    assert isinstance(engine, OrtEngine)


def test_missing_gpu_provider_is_a_clear_error(const_model) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("CUDA provider present")
    with pytest.raises(RuntimeError, match="CUDAExecutionProvider"):
        OrtEngine(const_model({"out": out_rows()}), provider="cuda")


def test_tensorrt_engine_without_tensorrt(const_model) -> None:
    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("tensorrt installed")
    with pytest.raises(TensorRTUnavailable, match="tensorrt"):
        TensorRTEngine(const_model({"out": out_rows()}))


def mean_model(path: Path, batch: int | str = "batch") -> Path:
    """A tiny graph whose output depends on the input (per-channel mean, doubled), so binding bugs show."""
    nodes = [
        helper.make_node("ReduceMean", ["x"], ["mean"], axes=[2, 3], keepdims=0),
        helper.make_node("Add", ["mean", "mean"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "mean",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_io_binding_matches_plain_run_across_batch_sizes(tmp_path: Path) -> None:
    """The bound path (what CUDA/TensorRT providers use) reuses per-shape buffers; results must not leak
    between runs, including after the shape cache evicts (more distinct sizes than it keeps)."""
    path = mean_model(tmp_path / "mean.onnx")
    bound = OrtEngine(path, io_binding=True, threads=1)
    plain = OrtEngine(path, threads=1)
    assert bound.uses_io_binding and not plain.uses_io_binding
    rng = np.random.default_rng(0)
    earlier: list[tuple[np.ndarray, np.ndarray]] = []
    for n in [1, 3, 2, 5, 6, 7, 1, 3, 3]:
        x = rng.standard_normal((n, 3, 8, 8)).astype(np.float32)
        (got,) = bound.run(x)
        np.testing.assert_allclose(got, plain.run(x)[0], rtol=1e-6)
        np.testing.assert_allclose(got, 2 * x.mean(axis=(2, 3)), rtol=1e-5, atol=1e-6)
        earlier.append((got.copy(), got))
    for kept, returned in earlier:  # returned arrays are the caller's: later runs never overwrite them
        np.testing.assert_array_equal(kept, returned)


def test_io_binding_fixed_batch_pads_and_trims(tmp_path: Path) -> None:
    engine = OrtEngine(mean_model(tmp_path / "mean2.onnx", batch=2), io_binding=True, threads=1)
    x = np.arange(5 * 3 * 64, dtype=np.float32).reshape(5, 3, 8, 8)
    (got,) = engine.run(x)
    np.testing.assert_allclose(got, 2 * x.mean(axis=(2, 3)), rtol=1e-6)


def test_io_binding_on_a_real_model(nanodet_path) -> None:
    x = np.random.default_rng(1).standard_normal((2, 3, 416, 416)).astype(np.float32)
    bound, plain = OrtEngine(nanodet_path, io_binding=True), OrtEngine(nanodet_path)
    for got, want in zip(bound.run(x), plain.run(x), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_available_cpus_positive() -> None:
    assert available_cpus() >= 1
