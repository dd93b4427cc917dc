"""H.264 MP4 clips with PyAV: yuv420p and `movflags=faststart`, so a browser plays them as they
download; each frame is stamped with its capture time, so the clip keeps the camera's timing
(a frame the camera dropped leaves its gap instead of speeding the clip up)."""

from __future__ import annotations

import statistics
import tempfile
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

TIME_BASE = Fraction(1, 1000)  # milliseconds: capture times are kept to the millisecond


def frame_rate(capture_ns: list[int], fallback: float = 10.0) -> Fraction:
    """The camera's rate, from the median gap between consecutive captures."""
    gaps = [b - a for a, b in zip(capture_ns, capture_ns[1:], strict=False) if b > a]
    if not gaps:
        return Fraction(fallback).limit_denominator(1001)
    return Fraction(1e9 / statistics.median(gaps)).limit_denominator(1001)


def encode_clip(
    frames: Iterable[tuple[int, np.ndarray]], size: tuple[int, int], rate: Fraction, crf: int, preset: str
) -> bytes:
    """Encode (capture_ns, BGR image) pairs in capture order; `size` is (width, height) of the frames.

    yuv420p needs even sizes: an odd last row or column is cut. Written to a temporary file,
    since faststart moves the index to the front in a second pass over the finished file.
    """
    width, height = size[0] - size[0] % 2, size[1] - size[1] % 2
    with tempfile.TemporaryDirectory(prefix="sightline-clip-") as tmp:
        path = Path(tmp) / "clip.mp4"
        with av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"}) as container:
            stream = container.add_stream("libx264", rate=rate)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.codec_context.time_base = TIME_BASE
            stream.options = {"crf": str(crf), "preset": preset}
            first: int | None = None
            last_pts = -1
            for capture_ns, image in frames:
                first = capture_ns if first is None else first
                pts = max(last_pts + 1, round((capture_ns - first) / 1e6))  # strictly increasing
                frame = av.VideoFrame.from_ndarray(
                    np.ascontiguousarray(image[:height, :width]), format="bgr24"
                )
                frame.pts, frame.time_base, last_pts = pts, TIME_BASE, pts
                container.mux(stream.encode(frame))
            container.mux(stream.encode())
        return path.read_bytes()
