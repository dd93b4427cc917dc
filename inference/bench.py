"""Throughput check: ``python -m inference.bench MODEL.onnx --batches 1 4 --threads 2``.

Reports raw engine time per image (random input) and the full detector (pre + infer + post) on a
synthetic 768x576 frame, so capacity planning uses numbers from the machine at hand.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from inference.detector import Detector


def _rate(fn: object, seconds: float) -> float:
    """Mean seconds per call of ``fn`` over ~``seconds`` after two warm-up calls."""
    fn(), fn()  # type: ignore[operator]
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()  # type: ignore[operator]
        n += 1
    return (time.perf_counter() - start) / n


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m inference.bench")
    parser.add_argument("model", type=Path)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--engine", default="cpu")
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args(argv)
    detector = Detector.from_path(args.model, engine=args.engine, engine_options={"threads": args.threads})
    frame = np.random.default_rng(0).integers(0, 255, (576, 768, 3), dtype=np.uint8)
    print(f"{args.model.name} engine={args.engine} threads={args.threads or 'auto'}")
    for batch in args.batches:
        w, h = detector.manifest.input_size
        shape = (batch, h, w, 3) if detector.manifest.preprocessing.layout == "nhwc" else (batch, 3, h, w)
        dtype = detector.manifest.preprocessing.dtype
        x = np.random.default_rng(0).random(shape).astype(dtype)
        raw = _rate(lambda x=x: detector.engine.run(x), args.seconds)
        full = _rate(lambda batch=batch: detector.detect([frame] * batch), args.seconds)
        print(
            f"  batch {batch}: raw {raw * 1e3 / batch:6.1f} ms/img ({batch / raw:5.1f} img/s)   "
            f"detector {full * 1e3 / batch:6.1f} ms/img ({batch / full:5.1f} img/s)"
        )


if __name__ == "__main__":
    main()
