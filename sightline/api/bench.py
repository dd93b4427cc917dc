"""`sightline bench api`: concurrent POST /v1/detect against an in-process API vs the bare engine.

Both sides use the same model, batch policy and image, in the same run, so `ratio` says how much
of the engine's throughput survives HTTP, JPEG decoding and micro-batching.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import simplejpeg

from sightline.config import SightlineConfig


def _auth(config: SightlineConfig) -> dict[str, str]:
    """The read (else admin) token as a header when reads are not public."""
    secret = config.api.read_token or config.api.admin_token
    if config.api.reads_open or secret is None:
        return {}
    return {"Authorization": f"Bearer {secret.get_secret_value()}"}


async def _load(
    url: str, payload: bytes, concurrency: int, duration_s: float, headers: dict[str, str]
) -> tuple[list[float], int, list[int]]:
    latencies: list[float] = []
    batches: list[int] = []
    errors = 0
    deadline = time.perf_counter() + duration_s
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits, headers=headers) as client:

        async def one_client() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                try:
                    response = await client.post(
                        "/v1/detect", content=payload, headers={"Content-Type": "image/jpeg"}
                    )
                    ok = response.status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    latencies.append(time.perf_counter() - started)
                    batches.append(response.json()["timing"]["batch_size"])
                else:
                    errors += 1

        await asyncio.gather(*(one_client() for _ in range(concurrency)))
    return latencies, errors, batches


def raw_fps(config: SightlineConfig, image: np.ndarray, duration_s: float) -> float:
    """Frames/s of Detector.detect alone on full batches of the decoded image (same model and batch)."""
    from inference.detector_source import DetectorSource

    source = DetectorSource(config)
    try:
        detector = source.current()
        batch = [image] * config.inference.max_batch
        detector.detect(batch)  # warm-up
        frames, started = 0, time.perf_counter()
        while time.perf_counter() - started < duration_s:
            detector.detect(batch)
            frames += len(batch)
        return frames / (time.perf_counter() - started)
    finally:
        source.close()


def run(
    config: SightlineConfig, image_path: Path, concurrency: int = 8, duration_s: float = 20.0
) -> dict[str, Any]:
    from sightline.api.app import create_app
    from sightline.api.server import ServerThread

    payload = image_path.read_bytes()
    app = create_app(config, tail=False)
    with ServerThread(app) as server:
        headers = _auth(config)
        warm = httpx.post(f"{server.url}/v1/detect", content=payload, headers=headers, timeout=60)
        warm.raise_for_status()
        started = time.perf_counter()
        latencies, errors, batches = asyncio.run(_load(server.url, payload, concurrency, duration_s, headers))
        elapsed = time.perf_counter() - started
    engine_fps = raw_fps(config, simplejpeg.decode_jpeg(payload, colorspace="BGR"), min(duration_s, 10.0))
    ms = np.asarray(latencies) * 1e3 if latencies else np.zeros(1)
    rps = len(latencies) / elapsed
    return {
        "bench": "api",
        "image": image_path.name,
        "concurrency": concurrency,
        "duration_s": round(elapsed, 2),
        "requests": len(latencies),
        "errors": errors,
        "rps": round(rps, 2),
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p99_ms": round(float(np.percentile(ms, 99)), 1),
        "raw_fps": round(engine_fps, 2),
        "ratio": round(rps / engine_fps, 3) if engine_fps else None,
        "mean_batch": round(float(np.mean(batches)), 2) if batches else None,
        "max_batch": config.inference.max_batch,
        "max_wait_ms": config.inference.max_wait_ms,
        "threads": config.inference.threads,
        "model": config.inference.model,
    }
