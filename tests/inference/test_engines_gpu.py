"""GPU engines and GPU JPEG decoding against the CPU reference on the real models and media.

Every test skips with the reason (no CUDA device, or a missing package of the 'gpu' extra) where it
cannot run; on an NVIDIA host with ``pip install -e '.[gpu]'`` they all run. Native TensorRT plans are
built once per model and precision into a module-scoped cache (a few minutes on first run).
"""

from __future__ import annotations

import importlib.util
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import simplejpeg

from inference import gpu_jpeg
from inference.batching import Batch
from inference.detector import Detector, model_input_shape
from inference.engines import Engine, OrtEngine, TensorRTEngine
from inference.engines.cuda_probe import cuda_devices
from inference.manifest import ModelManifest, infer_manifest
from inference.pipeline import StagedPipeline
from inference.preprocess import preprocess
from sightline.assets import media_path
from tests.helpers import frame_batch

pytestmark = pytest.mark.gpu

MODELS = ("nanodet", "yolo11n")
# (max, mean) absolute error allowed, relative to the largest reference value of the compared part (at
# least 1). fp32 still differs from the CPU through TF32 tensor-core maths and other kernels; fp16 more.
TOLERANCE = {"fp32": (0.01, 0.001), "fp16": (0.05, 0.005)}


def need_gpu() -> None:
    count, reason = cuda_devices()
    if count == 0:
        pytest.skip(f"no CUDA device: {reason}")


def need_ort_provider(name: str) -> None:
    need_gpu()
    import onnxruntime as ort

    if name not in ort.get_available_providers():
        pytest.skip(f"onnxruntime here has no {name} (install onnxruntime-gpu, extra 'gpu')")


def need_tensorrt() -> None:
    need_gpu()
    for module, package in (("tensorrt", "tensorrt-cu12"), ("cuda.bindings", "cuda-python")):
        if importlib.util.find_spec(module.split(".")[0]) is None or importlib.util.find_spec(module) is None:
            pytest.skip(f"{package} is not installed (extra 'gpu')")


# -- model inputs and CPU references ----------------------------------------------------------------
class Case:
    """One model's manifest, real preprocessed batches and the CPU engine's outputs for them."""

    def __init__(self, name: str, path: Path, frames: list[np.ndarray]) -> None:
        self.name, self.path = name, path
        self.manifest: ModelManifest = infer_manifest(path, name, "1")
        self.input_shape = model_input_shape(self.manifest)
        self.batches = {n: preprocess(frames[:n], self.manifest)[0] for n in (1, 8, 20)}
        cpu = OrtEngine(path, max_batch=32)
        self.names = cpu.output_names
        self.reference = {n: cpu.run(batch) for n, batch in self.batches.items()}
        cpu.close()


@pytest.fixture(scope="module")
def cases(nanodet_path, yolo11n_path, bus_bgr, vtest_frames) -> dict[str, Case]:
    need_gpu()  # before the CPU references, which are slow on a small CPU
    frames = [bus_bgr] + [vtest_frames[380 + i] for i in range(24)]
    return {
        "nanodet": Case("nanodet", nanodet_path, frames),
        "yolo11n": Case("yolo11n", yolo11n_path, frames),
    }


def parts(case: Case, outputs: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Outputs by name; YOLO's single output split into box pixels and class scores (different scales)."""
    named = dict(zip(case.names, outputs, strict=True))
    if case.name == "yolo11n":
        (out,) = outputs
        return {"boxes": out[:, :4], "scores": out[:, 4:]}
    return named


def assert_matches_cpu(case: Case, engine: Engine, got: list[np.ndarray], n: int, precision: str) -> None:
    by_name = dict(zip(engine.output_names, got, strict=True))
    ordered = [by_name[name] for name in case.names]  # engines may list outputs in another order
    limit_max, limit_mean = TOLERANCE[precision]
    want_parts = parts(case, case.reference[n])
    for label, have in parts(case, ordered).items():
        want = want_parts[label]
        assert have.shape == want.shape, f"{case.name}/{label}: {have.shape} != {want.shape}"
        assert np.isfinite(have).all(), f"{case.name}/{label}: non-finite outputs"
        scale = max(1.0, float(np.abs(want).max()))
        error = np.abs(have.astype(np.float64) - want)
        assert error.max() <= limit_max * scale and error.mean() <= limit_mean * scale, (
            f"{case.name}/{label} batch {n} {precision}: max {error.max():.4g}, mean {error.mean():.4g}, "
            f"scale {scale:.4g}"
        )


# -- engines, built once per module ----------------------------------------------------------------
EngineFactory = Callable[..., Any]


@pytest.fixture(scope="module")
def trt_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("trt-cache")


@pytest.fixture(scope="module")
def engines(trt_cache: Path, cases: dict[str, Case]) -> Iterator[EngineFactory]:
    cache_dir = trt_cache
    built: dict[tuple[str, str, str], Any] = {}

    def get(kind: str, model: str, precision: str) -> Any:
        key = (kind, model, precision)
        if key not in built:
            case = cases[model]
            common = {"max_batch": 8, "cache_dir": cache_dir, "fp16": precision == "fp16"}
            if kind == "tensorrt":  # native TensorRT; "cuda" and "ort-tensorrt" are ORT providers
                built[key] = TensorRTEngine(case.path, input_shape=case.input_shape, **common)
            else:
                provider = {"cuda": "cuda", "ort-tensorrt": "tensorrt"}[kind]
                built[key] = OrtEngine(case.path, provider=provider, input_shape=case.input_shape, **common)
        return built[key]

    yield get
    for engine in built.values():
        engine.close()


# -- ONNX Runtime with GPU execution providers --------------------------------------------------------
@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("n", [1, 8])
def test_ort_cuda_provider_matches_cpu(
    engines: EngineFactory, cases: dict[str, Case], model: str, n: int
) -> None:
    need_ort_provider("CUDAExecutionProvider")
    engine = engines("cuda", model, "fp32")
    assert engine.providers[0] == "CUDAExecutionProvider" and engine.uses_io_binding
    for _ in range(2):  # the second run reuses the bound device input buffer
        assert_matches_cpu(cases[model], engine, engine.run(cases[model].batches[n]), n, "fp32")


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_ort_tensorrt_provider_matches_cpu(
    engines: EngineFactory, cases: dict[str, Case], model: str, precision: str
) -> None:
    need_ort_provider("TensorrtExecutionProvider")
    if importlib.util.find_spec("tensorrt") is None:
        pytest.skip("tensorrt-cu12 is not installed (extra 'gpu'): the TensorRT provider loads its libraries")
    engine = engines("ort-tensorrt", model, precision)  # raises if ORT dropped the provider it was asked for
    assert engine.providers[0] == "TensorrtExecutionProvider"
    for n in (1, 8):
        assert_matches_cpu(cases[model], engine, engine.run(cases[model].batches[n]), n, precision)


# -- native TensorRT -------------------------------------------------------------------------------
@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_native_tensorrt_matches_cpu(
    engines: EngineFactory, cases: dict[str, Case], model: str, precision: str
) -> None:
    need_tensorrt()
    engine = engines("tensorrt", model, precision)
    assert engine.max_batch == 8 and engine.fp16 == (precision == "fp16")
    for n in (1, 8, 20):  # 20 = three pieces pipelined over both contexts
        assert_matches_cpu(cases[model], engine, engine.run(cases[model].batches[n]), n, precision)


def test_native_tensorrt_plan_is_cached(
    engines: EngineFactory, cases: dict[str, Case], trt_cache: Path
) -> None:
    need_tensorrt()
    engine = engines("tensorrt", "nanodet", "fp32")
    cache_dir = trt_cache
    plans = list(cache_dir.glob("nanodet*.plan"))
    assert plans, f"no plan cached in {cache_dir}"
    again = TensorRTEngine(cases["nanodet"].path, max_batch=8, cache_dir=cache_dir, fp16=False)
    try:  # loads the cached plan (no new file) and gives the same outputs
        assert sorted(cache_dir.glob("nanodet*.plan")) == sorted(plans)
        assert_matches_cpu(cases["nanodet"], again, again.run(cases["nanodet"].batches[1]), 1, "fp32")
    finally:
        again.close()
    assert engine.max_batch == 8


def test_native_tensorrt_overlapping_runs(engines: EngineFactory, cases: dict[str, Case]) -> None:
    """Two threads share one engine (both contexts busy at once) and get their own correct outputs."""
    need_tensorrt()
    case = cases["nanodet"]
    engine = engines("tensorrt", "nanodet", "fp32")
    failures: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for _ in range(10):
                assert_matches_cpu(case, engine, engine.run(case.batches[n]), n, "fp32")
        except BaseException as exc:  # reported in the main thread
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in (8, 1, 20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not any(thread.is_alive() for thread in threads), "runs deadlocked"
    assert not failures, failures[0]


def test_native_tensorrt_submit_pipelines_and_outputs_stay_valid(
    engines: EngineFactory, cases: dict[str, Case]
) -> None:
    need_tensorrt()
    case = cases["yolo11n"]
    engine = engines("tensorrt", "yolo11n", "fp32")
    first = engine.submit(case.batches[8])
    second = engine.submit(case.batches[1])  # queued on the other context while the first runs
    late, early = second.result(), first.result()  # read back in either order
    assert_matches_cpu(case, engine, early, 8, "fp32")
    assert_matches_cpu(case, engine, late, 1, "fp32")
    kept = [o.copy() for o in early]
    for _ in range(3):  # later runs on both contexts never overwrite outputs the caller still holds
        engine.run(case.batches[1])
    for held, copy in zip(early, kept, strict=True):
        np.testing.assert_array_equal(held, copy)


def test_ort_cuda_overlapping_runs(engines: EngineFactory, cases: dict[str, Case]) -> None:
    need_ort_provider("CUDAExecutionProvider")
    case = cases["nanodet"]
    engine = engines("cuda", "nanodet", "fp32")
    failures: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for _ in range(5):
                assert_matches_cpu(case, engine, engine.run(case.batches[n]), n, "fp32")
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in (8, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not failures, failures[0]


def test_native_tensorrt_fp16_detector_still_finds_the_bus(
    engines: EngineFactory, cases: dict[str, Case], bus_bgr: np.ndarray
) -> None:
    """End to end through the detector: fp16 kernels keep NanoDet's known detections on bus.jpg."""
    need_tensorrt()
    case = cases["nanodet"]
    gpu = Detector(engines("tensorrt", "nanodet", "fp16"), case.manifest)
    cpu = Detector(OrtEngine(case.path), case.manifest)
    (got,), _ = gpu.detect([bus_bgr])
    (want,), _ = cpu.detect([bus_bgr])
    names = got.data["class_name"].tolist()
    assert names.count("bus") >= 1 and names.count("person") >= 4
    bus_gpu = got.xyxy[got.data["class_name"] == "bus"][0]
    bus_cpu = want.xyxy[want.data["class_name"] == "bus"][0]
    np.testing.assert_allclose(bus_gpu, bus_cpu, atol=8.0)  # pixels of the 810x1080 photo


def test_native_tensorrt_runs_ahead_in_the_staged_pipeline(
    engines: EngineFactory, cases: dict[str, Case], vtest_frames: dict[int, np.ndarray]
) -> None:
    """The engine stage queues batch N+1 on the second context before reading batch N back;
    batches still leave in order, with the detections the CPU model gives (fp32)."""
    need_tensorrt()
    case = cases["nanodet"]
    gpu = Detector(engines("tensorrt", "nanodet", "fp32"), case.manifest, max_batch=4)
    cpu = Detector(OrtEngine(case.path), case.manifest, max_batch=4)
    assert gpu.max_pending == 2 and cpu.max_pending == 0
    frames = [np.ascontiguousarray(vtest_frames[380 + i]) for i in range(24)]
    pipeline = StagedPipeline(lambda: gpu, threading.Event())
    try:
        # 6 frames a batch: two chunks (4 + 2), so a batch alone fills both contexts.
        submitted = [frame_batch(frames[i : i + 6], i) for i in range(0, 24, 6)]
        for batch in submitted:
            while not pipeline.submit(batch, timeout=0.1):
                pass
        out: list[Batch] = []
        deadline = time.monotonic() + 120
        while len(out) < len(submitted) and time.monotonic() < deadline:
            pipeline.wait(0.1)
            out += pipeline.take_finished()
    finally:
        pipeline.close()
    assert out == submitted and pipeline.fatal is None
    for batch, start in zip(out, range(0, 24, 6), strict=True):
        assert batch.error is None, batch.error
        want, _ = cpu.detect(frames[start : start + 6])
        for got, ref in zip(batch.results, want, strict=True):
            # TF32 kernels may move a borderline box across the score threshold, nothing more.
            assert abs(len(got) - len(ref)) <= 1 and len(ref) > 0, (len(got), len(ref))
            best_got, best_ref = got.xyxy[got.confidence.argmax()], ref.xyxy[ref.confidence.argmax()]
            np.testing.assert_allclose(best_got, best_ref, atol=2.0)


# -- GPU JPEG decoding ----------------------------------------------------------------------------
def test_gpu_jpeg_available_explains_itself() -> None:
    ok, reason = gpu_jpeg.available()
    assert ok == (reason == ""), (ok, reason)
    if not ok:
        assert "nvimgcodec" in reason.lower() or "cuda" in reason.lower() or "driver" in reason.lower()


@pytest.fixture(scope="module")
def jpegs(bus_bgr: np.ndarray, vtest_frames: dict[int, np.ndarray]) -> list[bytes]:
    ok, reason = gpu_jpeg.available()
    if not ok:
        pytest.skip(reason)
    photos = [media_path(name).read_bytes() for name in ("bus.jpg", "zidane.jpg", "dog.jpg", "kite.jpg")]
    frame = np.ascontiguousarray(vtest_frames[400])
    made = [
        simplejpeg.encode_jpeg(frame, quality=q, colorspace="BGR", colorsubsampling=sub)
        for q, sub in ((85, "420"), (95, "444"), (70, "422"))
    ]
    return photos + made


def test_nvjpeg_matches_simplejpeg(jpegs: list[bytes]) -> None:
    decoded = gpu_jpeg.decode_jpegs(jpegs, device_id=0)
    assert len(decoded) == len(jpegs)
    for index, (payload, image) in enumerate(zip(jpegs, decoded, strict=True)):
        want = simplejpeg.decode_jpeg(payload, colorspace="BGR")
        assert image.dtype == np.uint8 and image.shape == want.shape, (index, image.shape, want.shape)
        assert image.flags["C_CONTIGUOUS"]
        error = np.abs(image.astype(np.int16) - want.astype(np.int16))
        # IDCT and upsampling differ slightly between nvJPEG and libjpeg-turbo; a swapped channel order or
        # nearest-neighbour chroma would be far outside this.
        assert error.mean() <= 1.0 and error.max() <= 10, (index, error.mean(), error.max())


def test_nvjpeg_channel_order_is_bgr(jpegs: list[bytes]) -> None:
    red = np.zeros((64, 96, 3), np.uint8)
    red[..., 2] = 255  # BGR: red is the last channel
    (image,) = gpu_jpeg.decode_jpegs([simplejpeg.encode_jpeg(red, quality=95, colorspace="BGR")])
    assert image[..., 2].mean() > 240 and image[..., 0].mean() < 15


def test_nvjpeg_names_the_payloads_that_fail(jpegs: list[bytes]) -> None:
    batch = [jpegs[0], b"\xff\xd8 not a jpeg", jpegs[4], jpegs[1][:200]]
    with pytest.raises(gpu_jpeg.JpegDecodeError) as failure:
        gpu_jpeg.decode_jpegs(batch)
    assert failure.value.indices == [1, 3]
    assert len(gpu_jpeg.decode_jpegs([jpegs[0], jpegs[4]])) == 2  # the decoder is still usable


def test_gpu_jpeg_asks_for_rgb_on_old_and_new_nvimgcodec() -> None:
    """nvImageCodec renamed ``ColorSpec.RGB`` to ``SRGB`` in 0.7; the decoder must ask for RGB on both."""
    from types import SimpleNamespace

    new = SimpleNamespace(ColorSpec=SimpleNamespace(UNCHANGED=0, SRGB=1, GRAY=2))
    old = SimpleNamespace(ColorSpec=SimpleNamespace(UNCHANGED=0, RGB=2, GRAY=3))
    assert gpu_jpeg._rgb(new) == 1
    assert gpu_jpeg._rgb(old) == 2
