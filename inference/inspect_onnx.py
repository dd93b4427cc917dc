"""Read an ONNX model's I/O signature and probe its real output shapes.

Static output shapes in exported graphs are often symbolic (``unk__297``), so the only reliable way to
tell e.g. ``[B,84,N]`` from ``[B,N,85]`` is to run the model once on a zero tensor.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

Dim = int | str | None


@dataclass(frozen=True)
class TensorInfo:
    """Name, declared shape (ints or symbolic names) and numpy dtype of one model input/output."""

    name: str
    shape: tuple[Dim, ...]
    dtype: str


@dataclass(frozen=True)
class OnnxSignature:
    """What ``infer_manifest`` needs to know about a model, gathered in one place."""

    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    metadata: dict[str, str] = field(default_factory=dict)
    probed_shapes: list[tuple[int, ...]] = field(default_factory=list)

    def _literal(self, key: str) -> object:
        """A metadata value written as a Python literal (Ultralytics exports), or None."""
        raw = self.metadata.get(key)
        if not raw:
            return None
        try:
            return ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            return None

    @property
    def names(self) -> list[str] | None:
        """Class names from Ultralytics-style ``names`` metadata (``{0: 'person', ...}``), if present."""
        parsed = self._literal("names")
        if isinstance(parsed, dict):
            return [str(parsed[k]) for k in sorted(parsed)]
        if isinstance(parsed, list | tuple):
            return [str(v) for v in parsed]
        return None

    @property
    def imgsz(self) -> tuple[int, int] | None:
        """Export size as (h, w) from Ultralytics ``imgsz`` metadata, if present."""
        parsed = self._literal("imgsz")
        if isinstance(parsed, int):
            return parsed, parsed
        if isinstance(parsed, list | tuple) and len(parsed) == 2:
            return int(parsed[0]), int(parsed[1])
        return None


_ORT_TO_NUMPY = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(uint8)": "uint8",
    "tensor(int8)": "int8",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(double)": "float64",
}


def _info(arg: object) -> TensorInfo:
    shape = tuple(d if isinstance(d, int) else (str(d) if d is not None else None) for d in arg.shape)  # type: ignore[attr-defined]
    return TensorInfo(arg.name, shape, _ORT_TO_NUMPY.get(arg.type, arg.type))  # type: ignore[attr-defined]


def read_signature(path: str | Path) -> OnnxSignature:
    """Inputs, outputs and metadata, without running the model."""
    import onnxruntime as ort  # local: keep module import cheap for schema-only users

    model = onnx.load(str(path), load_external_data=False)
    metadata = {p.key: p.value for p in model.metadata_props}
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return OnnxSignature(
        inputs=[_info(i) for i in session.get_inputs()],
        outputs=[_info(o) for o in session.get_outputs()],
        metadata=metadata,
    )


def probe_output_shapes(path: str | Path, input_shape: tuple[int, ...], dtype: str) -> list[tuple[int, ...]]:
    """Run the model once on zeros of ``input_shape`` and return the concrete output shapes."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: np.zeros(input_shape, dtype=dtype)}
    return [tuple(int(d) for d in out.shape) for out in session.run(None, feed)]


def is_fixed_dim(dim: object) -> bool:
    """A concrete size: not a symbolic name or None (as ``first_input`` gives them), nor 0 or -1."""
    return isinstance(dim, int) and dim > 0


def first_input(path: str | Path) -> TensorInfo:
    """The first real graph input (initializers excluded) from the ONNX proto, without a session."""
    graph = onnx.load(str(path), load_external_data=False).graph
    initializers = {i.name for i in graph.initializer}
    inp = next(i for i in graph.input if i.name not in initializers)
    dims = tuple(
        d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
        for d in inp.type.tensor_type.shape.dim
    )
    dtype = onnx.helper.tensor_dtype_to_np_dtype(inp.type.tensor_type.elem_type).name
    return TensorInfo(inp.name, dims, dtype)
