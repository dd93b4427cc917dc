"""Runs INSIDE the conversion venv (TensorFlow + tf2onnx), never imported by the service.

Usage: python _tool_tfjs.py MODEL_JSON OUTPUT_ONNX OPSET

Works around the two snags documented in shared/README.md:
1. tf2onnx 1.17's tfjs reader calls ``np.product`` (removed in numpy 2) -> alias it to ``np.prod``.
2. tfjs graphs omit attributes current TensorFlow requires (``TArgs`` on fused ops, op defaults such as
   ``index_type`` on ``TopKV2``) -> fill them from TensorFlow's op registry before converting.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

if not hasattr(np, "product"):
    np.product = np.prod  # type: ignore[attr-defined]

from google.protobuf.json_format import MessageToDict  # noqa: E402
from tensorflow.python.framework import op_def_registry  # noqa: E402

# tfjs names some ops without the leading underscore TensorFlow registers them under.
_REGISTRY_NAME = {"FusedDepthwiseConv2dNative": "_FusedDepthwiseConv2dNative"}


def fill_missing_attrs(node: dict) -> list[str]:
    """Add registry defaults (and ``TArgs = [T] * num_args``) missing from a tfjs node; returns names."""
    op_def = op_def_registry.get(_REGISTRY_NAME.get(node["op"], node["op"]))
    if op_def is None or node["op"] == "Const":
        return []
    attrs = node.setdefault("attr", {})
    added = []
    for attr in op_def.attr:
        if attr.name in attrs:
            continue
        if attr.name == "TArgs" and "T" in attrs:
            count = int(attrs.get("num_args", {}).get("i", 0))
            attrs["TArgs"] = {"list": {"type": [attrs["T"]["type"]] * count}}
        elif attr.HasField("default_value"):
            attrs[attr.name] = MessageToDict(attr.default_value)
        else:
            continue
        added.append(f"{node['op']}.{attr.name}")
    return added


def patch_model_json(src: Path) -> Path:
    """Write ``<stem>.patched.json`` beside ``src`` (weights paths are relative) with attrs filled."""
    model = json.loads(src.read_text())
    topology = model["modelTopology"]
    nodes = list(topology.get("node", []))
    for fn in topology.get("library", {}).get("function", []):
        nodes += fn.get("nodeDef", [])
    added = sorted({a for node in nodes for a in fill_missing_attrs(node)})
    print(f"filled attrs: {added or 'none'}", flush=True)
    out = src.with_name(src.stem + ".patched.json")
    out.write_text(json.dumps(model))
    return out


def main() -> None:
    src, dst, opset = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    patched = patch_model_json(src)
    from tf2onnx import convert

    sys.argv = ["tf2onnx.convert", "--tfjs", str(patched), "--output", str(dst), "--opset", opset]
    convert.main()


if __name__ == "__main__":
    main()
