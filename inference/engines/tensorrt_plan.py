"""TensorRT plans: built once from the ONNX per model, GPU and shape, and cached on disk.

A build takes minutes on a large model, so workers share a plan cache; the key covers everything
that makes a plan invalid (model bytes, TensorRT version, GPU and compute capability, batch profile,
input shape, precision and the number of per-context profiles), so a changed model or driver stack
rebuilds instead of loading a stale plan.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inference.hashing import sha256_file


@dataclass(frozen=True)
class PlanSpec:
    input_name: str
    feature: tuple[int, ...]  # input shape without the batch dimension
    max_batch: int
    opt_batch: int
    fixed_batch: bool  # the ONNX fixes the batch dimension (profile min = max)
    profiled: bool  # some input dim is symbolic: the plan needs optimisation profiles
    fp16: bool
    workspace_gib: float
    contexts: int  # one identical profile per execution context


def cuda_check(result: Any) -> Any:
    """cuda-python returns ``(err, *values)``; raise on error, return the value(s)."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise RuntimeError(f"CUDA call failed: {err}")
    return values[0] if len(values) == 1 else values


def plan_cache_key(trt: Any, cudart: Any, path: Path, device_id: int, spec: PlanSpec) -> str:
    props = cuda_check(cudart.cudaGetDeviceProperties(device_id))
    gpu = f"{props.name.decode(errors='ignore') if isinstance(props.name, bytes) else props.name}"
    parts = [
        sha256_file(path),
        trt.__version__,
        gpu,
        f"{props.major}.{props.minor}",
        str(spec.max_batch),
        str(spec.opt_batch),
        str(spec.feature),
        str(spec.fp16),
        f"profiles={spec.contexts}",
    ]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:24]


def load_or_build_plan(
    trt: Any,
    cudart: Any,
    logger: Any,
    path: Path,
    device_id: int,
    spec: PlanSpec,
    cache_dir: str | Path | None,
) -> bytes:
    cache = Path(cache_dir or os.environ.get("SIGHTLINE_TRT_CACHE", ".cache/trt"))
    plan_path = cache / f"{path.stem}-{plan_cache_key(trt, cudart, path, device_id, spec)}.plan"
    if plan_path.exists():
        return plan_path.read_bytes()
    plan = build_plan(trt, logger, path, spec)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = plan_path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_bytes(plan)
    os.replace(tmp, plan_path)  # atomic: concurrent workers never read a half-written plan
    return plan


def build_plan(trt: Any, logger: Any, path: Path, spec: PlanSpec) -> bytes:
    builder = trt.Builder(logger)
    major = int(trt.__version__.split(".")[0])
    flags = 0 if major >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(spec.workspace_gib * (1 << 30)))
    # platform_has_fast_fp16 is deprecated in TensorRT 10 (every supported GPU has fast fp16).
    if spec.fp16 and getattr(builder, "platform_has_fast_fp16", True):
        config.set_flag(trt.BuilderFlag.FP16)
    if spec.profiled:
        low = spec.max_batch if spec.fixed_batch else 1
        shapes = (
            (low, *spec.feature),
            (max(low, min(spec.opt_batch, spec.max_batch)), *spec.feature),
            (spec.max_batch, *spec.feature),
        )
        for _ in range(spec.contexts):
            profile = builder.create_optimization_profile()
            profile.set_shape(spec.input_name, *shapes)
            config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT failed to build an engine for {path}")
    return bytes(serialized)
