"""Native TensorRT engine: builds a dynamic-batch plan from the ONNX once, caches it on disk, runs it.

Imports ``tensorrt`` and ``cuda-python`` lazily so CPU-only installs can import this module; constructing
``TensorRTEngine`` without them raises ``TensorRTUnavailable`` with the install hint.

Targets TensorRT 10's name-based tensor API (``set_input_shape`` / ``set_tensor_address`` /
``execute_async_v3``) and ``cuda.bindings.runtime`` from cuda-python 12.x.
"""

from __future__ import annotations

import ctypes
import queue
import threading
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from inference.engines.base import join_outputs, split_batch
from inference.engines.tensorrt_plan import PlanSpec, load_or_build_plan
from inference.engines.tensorrt_plan import cuda_check as _check
from inference.inspect_onnx import first_input, is_fixed_dim

# Two execution contexts, each on its own CUDA stream, so one batch's copies and kernels can overlap the
# other's. A dynamic-shape profile may serve only one context at a time, so the plan carries one identical
# profile per context (tensorrt_plan.py).
CONTEXTS = 2


# TensorRT keeps only the first logger it is given, process-wide, and logs through it from then on: every
# engine shares this one so a closed engine's logger is never the one TensorRT still holds.
_LOGGER: Any = None
_LOGGER_LOCK = threading.Lock()


def _shared_logger(trt: Any) -> Any:
    global _LOGGER
    with _LOGGER_LOCK:
        if _LOGGER is None:
            _LOGGER = trt.Logger(trt.Logger.WARNING)
        return _LOGGER


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


def _pinned_view(ptr: int, nbytes: int, dtype: np.dtype) -> np.ndarray:
    """A flat numpy array over page-locked host memory (cuda-python hands back a bare pointer)."""
    raw = (ctypes.c_byte * nbytes).from_address(ptr)
    return np.frombuffer(raw, dtype=dtype, count=nbytes // dtype.itemsize)


class _Slot:
    """One execution context with its stream, device buffers and pinned host staging, all max-batch sized."""

    def __init__(self, index: int, context: Any, stream: Any) -> None:
        self.index = index
        self.context = context
        self.stream = stream
        self.device: dict[str, int] = {}
        self.pinned: dict[str, int] = {}
        self.host: dict[str, np.ndarray] = {}


class PendingRun:
    """A batch enqueued on one context's stream; ``result()`` waits for it and frees the context.

    Every ``PendingRun`` must have ``result()`` (or ``discard()``) called exactly once, or its context stays
    taken and later runs wait for it.
    """

    def __init__(
        self, engine: TensorRTEngine, slot: _Slot, shapes: list[tuple[int, ...]], real: int | None = None
    ) -> None:
        self._engine = engine
        self._slot: _Slot | None = slot
        self._shapes = shapes
        self._real = real  # items that are not padding (a fixed-batch plan runs full batches)
        self._outputs: list[np.ndarray] | None = None
        self._error: BaseException | None = None

    def result(self) -> list[np.ndarray]:
        """Outputs in ``output_names`` order, copied out of the pinned staging so the caller owns them.

        Later calls return the same arrays, or raise the same error for a run that failed."""
        if self._outputs is not None:
            return self._outputs
        if self._error is not None:
            raise self._error
        slot = self._slot
        if slot is None:
            raise RuntimeError("this run was discarded")
        try:
            _check(self._engine._cudart.cudaSetDevice(self._engine.device_id))
            _check(self._engine._cudart.cudaStreamSynchronize(slot.stream))
            self._outputs = [
                slot.host[name][: int(np.prod(shape))].reshape(shape)[: self._real].copy()
                for name, shape in zip(self._engine.output_names, self._shapes, strict=True)
            ]
        except BaseException as exc:
            self._error = exc
            raise
        finally:
            self._slot = None
            self._engine._release(slot)
        return self._outputs

    def discard(self) -> None:
        """Wait for the run and give its context back without reading outputs (error paths)."""
        slot, self._slot = self._slot, None
        if slot is not None:
            try:
                self._engine._cudart.cudaSetDevice(self._engine.device_id)
                self._engine._cudart.cudaStreamSynchronize(slot.stream)
            finally:
                self._engine._release(slot)


class TensorRTEngine:
    """TensorRT plan with two execution contexts on two CUDA streams, pinned host staging, on one GPU.

    The plan cache key covers the ONNX sha256, TensorRT version, GPU, batch profile, input shape,
    precision and context layout, so a changed model or driver stack rebuilds instead of loading a stale
    plan. The profile is min 1, opt ``opt_batch`` (default ``max_batch``), max ``max_batch``.

    Concurrency contract:

    * ``run`` and ``submit`` are thread-safe. Up to two batches are in flight at once, one per context;
      a third caller blocks until one finishes. While one batch is copied back, the other's host-to-device
      copy and kernels run, so two threads calling ``run`` (or one thread using ``submit`` to enqueue batch
      k+1 before reading batch k) keep the GPU busy between batches.
    * Returned arrays belong to the caller: they are copied out of the pinned staging before the context
      is released, so a later ``run`` never overwrites outputs still being read.
    * A batch above ``max_batch`` is split; ``run`` keeps the next piece queued on the other context while
      it reads the previous one back. It never waits for a context while holding one, so two concurrent
      callers cannot deadlock.
    * ``close`` waits for both streams; call it once no ``PendingRun`` is outstanding.
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
        self._device_id = device_id
        _check(cudart.cudaSetDevice(device_id))
        first = first_input(path)
        self._fixed = is_fixed_dim(first.shape[0])
        self._max_batch = int(first.shape[0]) if self._fixed else max_batch  # type: ignore[arg-type]
        # Any symbolic dim (batch, or H/W fixed by ``input_shape``) needs optimisation profiles.
        self._profiled = not all(map(is_fixed_dim, first.shape))
        feature = input_shape or tuple(first.shape[1:])
        if not all(map(is_fixed_dim, feature)):
            raise ValueError(f"input {first.name} has symbolic dims {feature}; pass input_shape=(C, H, W)")
        self._feature = tuple(int(d) for d in feature)  # type: ignore[arg-type]
        self._fp16 = fp16

        self._logger = _shared_logger(trt)
        spec = PlanSpec(
            input_name=first.name,
            feature=self._feature,
            max_batch=self._max_batch,
            opt_batch=opt_batch or self._max_batch,
            fixed_batch=self._fixed,
            profiled=self._profiled,
            fp16=fp16,
            workspace_gib=workspace_gib,
            contexts=CONTEXTS,
        )
        plan = load_or_build_plan(trt, cudart, self._logger, Path(path), device_id, spec, cache_dir)
        self._runtime = trt.Runtime(self._logger)
        self._engine = self._runtime.deserialize_cuda_engine(plan)
        if self._engine is None:
            raise RuntimeError("TensorRT could not deserialize the plan")
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        is_input = {n: self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        self._inputs = [n for n in names if is_input[n]]
        self._outputs = [n for n in names if not is_input[n]]
        if len(self._inputs) != 1:
            raise ValueError(f"TensorRTEngine runs single-input models; {path} has inputs {self._inputs}")
        self._dtypes = {n: np.dtype(trt.nptype(self._engine.get_tensor_dtype(n))) for n in names}
        self._free: queue.Queue[_Slot] = queue.Queue()
        self._slots: list[_Slot] = []
        self._closed = False
        self._close_lock = threading.Lock()
        try:
            for index in range(CONTEXTS):
                self._free.put(self._make_slot(index))
        except BaseException:
            self.close()
            raise

    # -- contexts / memory ---------------------------------------------------------------------------
    def _make_slot(self, index: int) -> _Slot:
        cudart = self._cudart
        context = self._engine.create_execution_context()
        if context is None:
            raise RuntimeError("TensorRT could not create an execution context (out of device memory?)")
        # Non-blocking: a blocking stream also waits for the legacy default stream, which other GPU work in
        # the worker (nvJPEG decoding) uses, and that would serialise both contexts behind it.
        stream = _check(cudart.cudaStreamCreateWithFlags(cudart.cudaStreamNonBlocking))
        slot = _Slot(index, context, stream)
        self._slots.append(slot)  # listed before allocating, so close() frees a half-built slot too
        if self._profiled:
            if not context.set_optimization_profile_async(index, int(slot.stream)):
                raise RuntimeError(f"TensorRT could not select optimisation profile {index}")
            _check(cudart.cudaStreamSynchronize(slot.stream))
        name = self._inputs[0]
        if not context.set_input_shape(name, (self._max_batch, *self._feature)):
            raise RuntimeError(f"TensorRT rejected input shape {(self._max_batch, *self._feature)}")
        for tensor in self._inputs + self._outputs:
            shape = tuple(context.get_tensor_shape(tensor))
            if any(d < 0 for d in shape):
                raise ValueError(f"output {tensor} has a data-dependent shape {shape}; use engine 'ort'")
            nbytes = max(int(np.prod(shape)) * self._dtypes[tensor].itemsize, 1)
            slot.device[tensor] = int(_check(cudart.cudaMalloc(nbytes)))
            slot.pinned[tensor] = int(_check(cudart.cudaMallocHost(nbytes)))
            slot.host[tensor] = _pinned_view(slot.pinned[tensor], nbytes, self._dtypes[tensor])
            context.set_tensor_address(tensor, slot.device[tensor])
        return slot

    def _acquire(self, block: bool) -> _Slot | None:
        if self._closed:
            raise RuntimeError("TensorRTEngine is closed")
        try:
            return self._free.get(block=block)
        except queue.Empty:
            return None

    def _release(self, slot: _Slot) -> None:
        self._free.put(slot)

    # -- run -----------------------------------------------------------------------------------------
    def _enqueue(self, slot: _Slot, batch: np.ndarray, real: int | None = None) -> PendingRun:
        """Stage ``batch`` in pinned memory and queue copy in, inference and copy out on the slot's stream."""
        cudart = self._cudart
        h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        name = self._inputs[0]
        try:
            shape = (len(batch), *self._feature)
            if tuple(batch.shape) != shape or len(batch) > self._max_batch:
                raise ValueError(
                    f"batch shape {batch.shape} does not fit {(self._max_batch, *self._feature)}"
                )
            _check(cudart.cudaSetDevice(self._device_id))  # per thread: run may come from any thread
            staged = slot.host[name][: int(np.prod(shape))].reshape(shape)
            np.copyto(staged, batch, casting="same_kind")
            if not slot.context.set_input_shape(name, shape):
                raise RuntimeError(f"TensorRT rejected input shape {shape}")
            _check(
                cudart.cudaMemcpyAsync(slot.device[name], slot.pinned[name], staged.nbytes, h2d, slot.stream)
            )
            if not slot.context.execute_async_v3(int(slot.stream)):
                raise RuntimeError("TensorRT execution failed")
            shapes = []
            for out in self._outputs:
                out_shape = tuple(int(d) for d in slot.context.get_tensor_shape(out))
                nbytes = int(np.prod(out_shape)) * self._dtypes[out].itemsize
                _check(cudart.cudaMemcpyAsync(slot.pinned[out], slot.device[out], nbytes, d2h, slot.stream))
                shapes.append(out_shape)
        except BaseException:
            PendingRun(self, slot, []).discard()
            raise
        return PendingRun(self, slot, shapes, real)

    def submit(self, batch: np.ndarray) -> PendingRun:
        """Enqueue one batch of at most ``max_batch`` and return at once; waits only for a free context.

        A caller holding ``max_pending`` uncollected runs must collect one first, or it waits forever.
        """
        if not 0 < len(batch) <= self._max_batch:
            raise ValueError(f"submit takes 1 to max_batch={self._max_batch} items, got {len(batch)}")
        [(piece, real)] = split_batch(batch, self._max_batch, self._fixed)  # padded for a fixed plan
        slot = self._acquire(block=True)
        assert slot is not None
        return self._enqueue(slot, piece, real)

    @property
    def max_pending(self) -> int:
        """Runs ``submit`` can hold at once: one per execution context."""
        return CONTEXTS

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        """Outputs in ``output_names`` order; batches above ``max_batch`` are split and pipelined."""
        if len(batch) == 0:
            raise ValueError("TensorRTEngine.run needs at least one item")
        pieces = split_batch(batch, self._max_batch, self._fixed)
        parts: list[list[np.ndarray]] = []
        pending: deque[tuple[PendingRun, int]] = deque()

        def collect() -> None:
            run, real = pending.popleft()
            parts.append([o[:real] for o in run.result()])

        try:
            for piece, real in pieces:
                slot = self._acquire(block=not pending)
                if slot is None:  # the other context is someone else's: finish ours before waiting
                    collect()
                    slot = self._acquire(block=True)
                assert slot is not None
                pending.append((self._enqueue(slot, piece), real))
                while len(pending) > 1:  # read piece k back while piece k+1 runs on the other stream
                    collect()
            while pending:
                collect()
        except BaseException:
            for run, _ in pending:
                run.discard()
            raise
        return join_outputs(parts)

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
    def device_id(self) -> int:
        return self._device_id

    @property
    def fp16(self) -> bool:
        return self._fp16

    def close(self) -> None:
        """Wait for both streams, then free device and pinned memory and the streams; safe to call twice."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
            cudart = self._cudart
            cudart.cudaSetDevice(self._device_id)  # the thread closing may have another current device
            for slot in getattr(self, "_slots", []):
                cudart.cudaStreamSynchronize(slot.stream)
                for ptr in slot.device.values():
                    cudart.cudaFree(ptr)
                for ptr in slot.pinned.values():
                    cudart.cudaFreeHost(ptr)
                slot.host.clear()
                cudart.cudaStreamDestroy(slot.stream)
                slot.context = None
            self._slots = []
            self._engine = None
