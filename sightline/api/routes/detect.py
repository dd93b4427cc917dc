"""POST /v1/detect: one image in, its detections out, micro-batched with concurrent requests."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Depends, Request
from prometheus_client import Counter, Histogram

from sightline.api.auth import require_read
from sightline.api.errors import ApiError
from sightline.api.images import decode_image
from sightline.api.upload import read_upload

router = APIRouter(prefix="/v1", tags=["detect"])

REQUESTS = Counter("sightline_api_detect_requests_total", "/v1/detect requests by outcome", ["status"])
LATENCY = Histogram(
    "sightline_api_detect_seconds",
    "/v1/detect latency (upload read to response)",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

BODY_DOC = {
    "requestBody": {
        "content": {
            "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
            "image/png": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
        },
        "required": True,
    }
}


@router.post("/detect", dependencies=[Depends(require_read)], openapi_extra=BODY_DOC)
async def detect(request: Request) -> dict[str, Any]:
    """Detections in the detections record's columnar form, from the registry's promoted model."""
    started = time.perf_counter()
    config = request.app.state.config
    batcher = request.app.state.batcher
    try:
        if batcher is None or not batcher.loaded:
            raise ApiError(503, "model_not_loaded", "the model is not loaded")
        with batcher.admit():
            data = await read_upload(request, config.api.max_upload_bytes)
            image = await asyncio.to_thread(decode_image, data, config.api.max_pixels)
            del data  # only the pixels wait in the queue
            result = await batcher.detect(image)
    except ApiError as exc:
        REQUESTS.labels(str(exc.status)).inc()
        raise
    height, width = image.shape[:2]
    REQUESTS.labels("200").inc()
    LATENCY.observe(time.perf_counter() - started)
    return {"width": width, "height": height, **result}
