"""Make a converted graph's batch dimension dynamic by rewriting its batch-1 ``Reshape`` targets.

tf2onnx bakes the tfjs graph's batch of 1 into the output ``Reshape``s (as a shape computed from
constants). Evaluating those shapes once and swapping in ``[0, C, -1]`` (0 = copy the batch dim) is the
smallest edit that keeps every output identical while allowing any batch size.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper


def _evaluate(model: onnx.ModelProto, tensors: list[str]) -> list[np.ndarray]:
    """Values of intermediate ``tensors`` (constant-derived) from one run on zeros."""
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    del probe.graph.output[:]
    probe.graph.output.extend(helper.make_empty_tensor_value_info(t) for t in tensors)
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    shape = [d if isinstance(d, int) else 1 for d in inp.shape]
    dtype = np.uint8 if inp.type == "tensor(uint8)" else np.float32
    return session.run(tensors, {inp.name: np.zeros(shape, dtype)})


def _set_batch_param(value_info: onnx.ValueInfoProto, name: str) -> None:
    dims = value_info.type.tensor_type.shape.dim
    if dims:
        dims[0].Clear()
        dims[0].dim_param = name


def make_batch_dynamic(src: str | Path, dst: str | Path, batch_name: str = "batch") -> list[str]:
    """Rewrite batch-1 Reshape targets to ``[0, ...]`` and name the batch dim; returns the edited nodes."""
    model = onnx.load(str(src))
    reshapes = [n for n in model.graph.node if n.op_type == "Reshape"]
    values = _evaluate(model, [n.input[1] for n in reshapes])
    edited = []
    for node, shape in zip(reshapes, values, strict=True):
        shape = np.asarray(shape, np.int64).reshape(-1)
        if len(shape) < 2 or shape[0] != 1:
            continue
        fixed = np.array([0, *shape[1:-1], -1], np.int64)
        const_name = f"{node.name}_shape_fixed"
        model.graph.initializer.append(numpy_helper.from_array(fixed, const_name))
        node.input[1] = const_name
        edited.append(node.name)
    if not edited:
        raise ValueError(f"{src}: no batch-1 Reshape found to edit")
    _set_batch_param(model.graph.input[0], batch_name)
    for out in model.graph.output:
        _set_batch_param(out, batch_name)
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))
    return edited
