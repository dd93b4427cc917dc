"""Native TensorRT engine: builds a dynamic-batch plan from the ONNX once, caches it on disk, runs it.

Imports ``tensorrt`` and ``cuda-python`` lazily so CPU-only installs can import this module; constructing
``TensorRTEngine`` without them raises ``TensorRTUnavailable`` with the install hint.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from inference.engines.base import run_in_chunks
from inference.hashing import sha256_file
from inference.inspect_onnx import first_input


class TensorRTUnavailable(RuntimeError):
    """``tensorrt`` / ``cuda-python`` missing or no CUDA device."""


def _import_trt() -> tuple[Any, Any]:
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise TensorRTUnavailable(
            "TensorRTEngine needs the 'tensorrt' package (pip install 'sightline[gpu]' on a CUDA host); "
            "use engine kind 'ort' with provider 'tensorrt' or 'cpu' otherwise"
        ) from exc
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cudart  # type: ignore[no-redef]  # older cuda-python
        except ImportError as exc:
            raise TensorRTUnavailable("TensorRTEngine needs 'cuda-python' for device memory") from exc
    return trt, cudart


def _check(result: Any) -> Any:
    """cuda-python returns ``(err, *values)``; raise on error, return the value(s)."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise RuntimeError(f"CUDA call failed: {err}")
    return values[0] if len(values) == 1 else values


class TensorRTEngine:
    """One TensorRT execution context with device buffers sized for ``max_batch``.

    The plan cache key covers the ONNX sha256, TensorRT version, GPU, batch profile, input shape and
    precision, so a changed model or driver stack rebuilds instead of loading a stale plan.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        max_batch: int = 16,
        opt_batch: int | None = None,
        cache_dir: str | Path | None = None,
        fp16: bool = True,
        device_id: int = 0,
        input_shape: tuple[int, ...] | None = None,
        workspace_gib: float = 2.0,
    ) -> None:
        self._trt, self._cudart = _import_trt()
        trt, cudart = self._trt, self._cudart
        _check(cudart.cudaSetDevice(device_id))
        first = first_input(path)
        self._fixed = isinstance(first.shape[0], int) and first.shape[0] > 0
        self._max_batch = int(first.shape[0]) if self._fixed else max_batch  # type: ignore[arg-type]
        feature = input_shape or tuple(first.shape[1:])
        if not all(isinstance(d, int) and d > 0 for d in feature):
            raise ValueError(f"input {first.name} has symbolic dims {feature}; pass input_shape=(C, H, W)")
        self._feature = tuple(int(d) for d in feature)  # type: ignore[arg-type]

        self._logger = trt.Logger(trt.Logger.WARNING)
        plan = self._load_or_build(
            Path(path), device_id, opt_batch or self._max_batch, fp16, workspace_gib, cache_dir, first.name
        )
        self._runtime = trt.Runtime(self._logger)
        self._engine = self._runtime.deserialize_cuda_engine(plan)
        if self._engine is None:
            raise RuntimeError("TensorRT could not deserialize the plan")
        self._context = self._engine.create_execution_context()
        self._stream = _check(cudart.cudaStreamCreate())
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        is_input = {n: self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        self._inputs = [n for n in names if is_input[n]]
        self._outputs = [n for n in names if not is_input[n]]
        self._dtypes = {n: np.dtype(trt.nptype(self._engine.get_tensor_dtype(n))) for n in names}
        self._buffers = self._allocate()

    # -- build / cache -------------------------------------------------------------------------------
    def _cache_key(self, path: Path, device_id: int, opt: int, fp16: bool) -> str:
        props = _check(self._cudart.cudaGetDeviceProperties(device_id))
        gpu = f"{props.name.decode(errors='ignore') if isinstance(props.name, bytes) else props.name}"
        parts = [
            sha256_file(path),
            self._trt.__version__,
            gpu,
            f"{props.major}.{props.minor}",
            str(self._max_batch),
            str(opt),
            str(self._feature),
            str(fp16),
        ]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:24]

    def _load_or_build(
        self,
        path: Path,
        device_id: int,
        opt: int,
        fp16: bool,
        workspace_gib: float,
        cache_dir: str | Path | None,
        input_name: str,
    ) -> bytes:
        cache = Path(cache_dir or os.environ.get("SIGHTLINE_TRT_CACHE", ".cache/trt"))
        plan_path = cache / f"{path.stem}-{self._cache_key(path, device_id, opt, fp16)}.plan"
        if plan_path.exists():
            return plan_path.read_bytes()
        plan = self._build(path, opt, fp16, workspace_gib, input_name)
        cache.mkdir(parents=True, exist_ok=True)
        tmp = plan_path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_bytes(plan)
        os.replace(tmp, plan_path)  # atomic: concurrent workers never read a half-written plan
        return plan

    def _build(self, path: Path, opt: int, fp16: bool, workspace_gib: float, input_name: str) -> bytes:
        trt = self._trt
        builder = trt.Builder(self._logger)
        major = int(trt.__version__.split(".")[0])
        flags = 0 if major >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, self._logger)
        if not parser.parse_from_file(str(path)):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise RuntimeError(f"TensorRT could not parse {path}: {errors}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
        if fp16 and builder.platform_has_fast_fp16:
            config.set_flag(trt.BuilderFlag.FP16)
        if not self._fixed:
            profile = builder.create_optimization_profile()
            profile.set_shape(
                input_name,
                (1, *self._feature),
                (min(opt, self._max_batch), *self._feature),
                (self._max_batch, *self._feature),
            )
            config.add_optimization_profile(profile)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise RuntimeError(f"TensorRT failed to build an engine for {path}")
        return bytes(serialized)

    # -- memory / run --------------------------------------------------------------------------------
    def _allocate(self) -> dict[str, tuple[int, int]]:
        """Device buffers sized for the largest batch: name -> (pointer, bytes)."""
        self._context.set_input_shape(self._inputs[0], (self._max_batch, *self._feature))
        buffers = {}
        for name in self._inputs + self._outputs:
            shape = tuple(self._context.get_tensor_shape(name))
            nbytes = int(np.prod(shape)) * self._dtypes[name].itemsize
            ptr = _check(self._cudart.cudaMalloc(max(nbytes, 1)))
            buffers[name] = (int(ptr), nbytes)
            self._context.set_tensor_address(name, int(ptr))
        return buffers

    def _run_once(self, batch: np.ndarray) -> list[np.ndarray]:
        cudart = self._cudart
        name = self._inputs[0]
        host_in = np.ascontiguousarray(batch, dtype=self._dtypes[name])
        self._context.set_input_shape(name, host_in.shape)
        h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        _check(
            cudart.cudaMemcpyAsync(
                self._buffers[name][0], host_in.ctypes.data, host_in.nbytes, h2d, self._stream
            )
        )
        if not self._context.execute_async_v3(int(self._stream)):
            raise RuntimeError("TensorRT execution failed")
        outputs = []
        for out in self._outputs:
            host = np.empty(tuple(self._context.get_tensor_shape(out)), self._dtypes[out])
            _check(
                cudart.cudaMemcpyAsync(
                    host.ctypes.data, self._buffers[out][0], host.nbytes, d2h, self._stream
                )
            )
            outputs.append(host)
        _check(cudart.cudaStreamSynchronize(self._stream))
        return outputs

    @property
    def input_names(self) -> list[str]:
        return self._inputs

    @property
    def output_names(self) -> list[str]:
        return self._outputs

    @property
    def max_batch(self) -> int:
        return self._max_batch

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        """Outputs in ``output_names`` order; batches above ``max_batch`` are split transparently."""
        return run_in_chunks(self._run_once, batch, self._max_batch, self._fixed)

    def close(self) -> None:
        """Free device buffers and the stream; safe to call twice."""
        for ptr, _ in getattr(self, "_buffers", {}).values():
            self._cudart.cudaFree(ptr)
        self._buffers = {}
        if getattr(self, "_stream", None) is not None:
            self._cudart.cudaStreamDestroy(self._stream)
            self._stream = None
        self._context = None
        self._engine = None
