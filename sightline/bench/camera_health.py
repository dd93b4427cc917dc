"""CPU cost of the camera health statistics per frame, next to what the decoder already spends.

    .venv/bin/python -m sightline.bench.camera_health [--video PATH] [--frames 300] [--json]

Decodes the first `--frames` frames of the video once (PyAV, as the decoder does), then times
on one thread, per frame over all of them: the decoder's own work (decoding, one pass; the JPEG
encode from the YUV planes, `decoders.encode`), the grayscale copy (`gray_copy`), the statistics
with a reference frame (`measure`), and the whole `HealthMonitor.inspect` measuring every frame.
The decoder measures one frame per `health.every_s` (1 s), so at the camera's fps the cost per
decoded frame is that divided by the fps; both are printed. No Kafka, Redis or model needed.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import av

from decoders.encode import encode_jpeg
from decoders.health import HealthMonitor
from decoders.image_stats import gray_copy, measure, thumbnail
from decoders.settings import HealthSettings
from sightline.assets import media_path


def _per_frame_ms(frames: list[av.VideoFrame], work: Callable[[av.VideoFrame], object], repeat: int) -> float:
    """Best of `repeat` passes over all frames (CPU time of this thread), in ms per frame."""
    best = float("inf")
    for _ in range(repeat):
        started = time.thread_time()
        for frame in frames:
            work(frame)
        best = min(best, time.thread_time() - started)
    return best * 1000 / len(frames)


def run(
    video: Path, count: int, width: int, repeat: int, size: tuple[int, int] | None = None
) -> dict[str, object]:
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or 25)
        started = time.thread_time()
        frames = [f for _, f in zip(range(count), container.decode(stream), strict=False)]
        decode_ms = (time.thread_time() - started) * 1000 / len(frames)
    if size is not None:  # a bigger camera: the same frames scaled up (decode_ms stays the source's)
        frames = [f.reformat(width=size[0], height=size[1], format="yuv420p") for f in frames]
    reference = thumbnail(gray_copy(frames[0], width))
    grays = {id(f): gray_copy(f, width) for f in frames}
    monitor = HealthMonitor("bench", HealthSettings(every_s=1e-9, width=width))
    t = iter(range(10**9))
    results = {
        "decode_ms": decode_ms,  # one pass, PyAV's own threads not counted
        "jpeg_encode_ms": _per_frame_ms(frames, lambda f: encode_jpeg(f, 85), repeat),
        "gray_copy_ms": _per_frame_ms(frames, lambda f: gray_copy(f, width), repeat),
        "measure_ms": _per_frame_ms(frames, lambda f: measure(grays[id(f)], reference), repeat),
        "inspect_ms": _per_frame_ms(frames, lambda f: monitor.inspect(f, float(next(t))), repeat),
    }
    return {
        "video": video.name,
        "size": [frames[0].width, frames[0].height],
        "fps": fps,
        "frames": len(frames),
        "width": width,
        **{k: round(v, 4) for k, v in results.items()},
        # One measured frame per second of stream time: the cost spread over every decoded frame.
        "inspect_per_decoded_frame_ms": round(results["inspect_ms"] / fps, 5),
        "share_of_decode_and_encode": round(
            results["inspect_ms"] / fps / (results["decode_ms"] + results["jpeg_encode_ms"]), 5
        ),
    }


def main() -> None:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    parser.add_argument("--video", type=Path, default=None, help="default: the sample vtest.avi")
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--width", type=int, default=HealthSettings().width)
    parser.add_argument("--repeat", type=int, default=5, help="passes; the best is kept")
    parser.add_argument("--size", default=None, help="WxH: time frames scaled to this size, e.g. 1920x1080")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.lower().split("x")) if args.size else None
    result = run(args.video or media_path("vtest.avi"), args.frames, args.width, args.repeat, size)  # type: ignore[arg-type]
    if args.json:
        print(json.dumps(result))
        return
    for key, value in result.items():
        print(f"{key:>30}: {value}")


if __name__ == "__main__":
    main()
