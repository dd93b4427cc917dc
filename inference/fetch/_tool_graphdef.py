"""Runs INSIDE the conversion venv: ``tf2onnx.convert`` with the numpy-2 alias applied first.

Usage: python _tool_graphdef.py <tf2onnx.convert arguments...>
"""

from __future__ import annotations

import sys

import numpy as np

if not hasattr(np, "product"):
    np.product = np.prod  # type: ignore[attr-defined]  # tf2onnx 1.17 still calls it


def main() -> None:
    from tf2onnx import convert

    sys.argv = ["tf2onnx.convert", *sys.argv[1:]]
    convert.main()


if __name__ == "__main__":
    main()
