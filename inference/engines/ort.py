"""ONNX Runtime engine: CPU by default, CUDA or TensorRT execution providers on GPU hosts."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Literal

import numpy as np

from inference.engines.base import run_in_chunks
from inference.engines.iobinding import BoundRunner
from inference.inspect_onnx import first_input, is_fixed_dim

Provider = Literal["cpu", "cuda", "tensorrt"]
_ORT_DEVICE = {"cpu": "cpu", "cuda": "cuda", "tensorrt": "cuda"}
_PROVIDER_NAMES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}


def available_cpus() -> int:
    """CPUs this process may really use (affinity and cgroup v2 quota).

    Measured here (2-core container): ORT's own default thread count ran NanoDet at ~128 ms/image versus
    ~33 ms with ``intra_op_num_threads=2``, so the engine always sets the count explicitly.
    """
    count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            count = min(count, max(1, int(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, count)


def _load_gpu_libraries(ort: Any, provider: Provider) -> None:
    """Load the CUDA, cuDNN and TensorRT libraries that pip put in site-packages, off the loader's path.

    Without this the providers cannot find them and ORT quietly runs on the CPU instead.
    """
    if provider == "tensorrt":
        with contextlib.suppress(ImportError):
            import tensorrt  # noqa: F401  # loads libnvinfer from tensorrt_libs for the TensorRT EP
    if hasattr(ort, "preload_dlls"):  # onnxruntime-gpu >= 1.21 with its [cuda,cudnn] extras
        ort.preload_dlls()


def _shape_spec(name: str, shape: tuple[int, ...]) -> str:
    return f"{name}:{'x'.join(str(d) for d in shape)}"


class OrtEngine:
    """``onnxruntime.InferenceSession`` behind the ``Engine`` protocol.

    ``input_shape`` (without batch) fixes symbolic H/W and lets the TensorRT EP build one dynamic-batch
    profile up front instead of rebuilding for every new batch size; its engines land in ``cache_dir``.

    On the CUDA and TensorRT providers runs go through I/O binding (``io_binding=None`` means "on for GPU
    providers"): the input is copied into a device ``OrtValue`` kept per batch shape and outputs stay on
    the device until one copy out, instead of ORT staging both through fresh buffers on every run. The
    binding is stateful, so GPU runs are serialised by a lock; the CPU path is plain ``session.run``.
    """

    def __init__(
        self,
        path: str | Path,
        provider: Provider = "cpu",
        *,
        threads: int | None = None,
        max_batch: int = 16,
        device_id: int = 0,
        cache_dir: str | Path | None = None,
        fp16: bool = False,
        input_shape: tuple[int, ...] | None = None,
        io_binding: bool | None = None,
        spin: bool = True,
    ) -> None:
        try:
            import onnxruntime as ort  # local: importing the package should not load ORT's native libs
        except ImportError as exc:
            raise RuntimeError(
                "OrtEngine needs ONNX Runtime: install the 'cpu' extra (pip install 'sightline[cpu]') or, "
                "on a CUDA host, the 'gpu' extra"
            ) from exc

        available = ort.get_available_providers()
        if _PROVIDER_NAMES[provider] not in available:
            raise RuntimeError(
                f"onnxruntime provider {_PROVIDER_NAMES[provider]!r} is not available here ({available}); "
                "install onnxruntime-gpu (extra 'gpu') on a CUDA host or use provider='cpu'"
            )
        if provider != "cpu":
            _load_gpu_libraries(ort, provider)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.inter_op_num_threads = 1
        options.intra_op_num_threads = threads or available_cpus()
        options.log_severity_level = 3
        # Idle intra-op threads spin for a while before sleeping: fastest for a lone model, but in a
        # pipelined worker they burn the cores the decode, prepare and finish threads need.
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")

        first = first_input(path)
        self._fixed = is_fixed_dim(first.shape[0])
        self._max_batch = int(first.shape[0]) if self._fixed else max_batch  # type: ignore[arg-type]
        feature_shape = input_shape or tuple(d if isinstance(d, int) else -1 for d in first.shape[1:])

        providers = self._providers(provider, device_id, cache_dir, fp16, first.name, feature_shape)
        self._session = ort.InferenceSession(str(path), options, providers=providers)
        if self._session.get_providers()[0] != _PROVIDER_NAMES[provider]:
            # ORT falls back to the next provider with only a log line when one fails to load (missing
            # CUDA libraries, driver too old): a worker asked for a GPU must not run on the CPU unnoticed.
            raise RuntimeError(
                f"onnxruntime could not start {_PROVIDER_NAMES[provider]} (session runs on "
                f"{self._session.get_providers()}); check the CUDA/cuDNN/TensorRT libraries and the driver"
            )
        self._inputs = [i.name for i in self._session.get_inputs()]
        self._outputs = [o.name for o in self._session.get_outputs()]
        self._binding = BoundRunner(self._session, _ORT_DEVICE[provider], device_id)
        self._bound = provider != "cpu" if io_binding is None else io_binding

    def _providers(
        self,
        provider: Provider,
        device_id: int,
        cache_dir: str | Path | None,
        fp16: bool,
        input_name: str,
        feature_shape: tuple[int, ...],
    ) -> list[Any]:
        cpu = "CPUExecutionProvider"
        cuda = ("CUDAExecutionProvider", {"device_id": device_id})
        if provider == "cpu":
            return [cpu]
        if provider == "cuda":
            return [cuda, cpu]
        cache = Path(cache_dir or os.environ.get("SIGHTLINE_TRT_CACHE", ".cache/trt"))
        cache.mkdir(parents=True, exist_ok=True)
        trt_options: dict[str, Any] = {
            "device_id": device_id,
            "trt_fp16_enable": fp16,
            "trt_engine_cache_enable": True,
            "trt_engine_cache_path": str(cache),
            "trt_timing_cache_enable": True,
            "trt_timing_cache_path": str(cache),
        }
        if all(d > 0 for d in feature_shape) and not self._fixed:
            trt_options |= {
                "trt_profile_min_shapes": _shape_spec(input_name, (1, *feature_shape)),
                "trt_profile_opt_shapes": _shape_spec(input_name, (self._max_batch, *feature_shape)),
                "trt_profile_max_shapes": _shape_spec(input_name, (self._max_batch, *feature_shape)),
            }
        return [("TensorrtExecutionProvider", trt_options), cuda, cpu]

    @property
    def input_names(self) -> list[str]:
        return self._inputs

    @property
    def output_names(self) -> list[str]:
        return self._outputs

    @property
    def max_batch(self) -> int:
        return self._max_batch

    @property
    def providers(self) -> list[str]:
        """Providers the session actually uses (ORT silently drops ones that failed to initialise)."""
        return list(self._session.get_providers())

    @property
    def uses_io_binding(self) -> bool:
        return self._bound

    def _run_once(self, batch: np.ndarray) -> list[np.ndarray]:
        if self._bound:
            return self._binding.run(batch)
        return self._session.run(self._outputs, {self._inputs[0]: batch})

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        """Outputs for ``batch`` in ``output_names`` order; any batch size (split to ``max_batch``)."""
        return run_in_chunks(self._run_once, batch, self._max_batch, self._fixed)

    def close(self) -> None:
        self._binding.clear()
        self._session = None  # type: ignore[assignment]
