"""The live view: an HTML page, each camera's annotated frames (MJPEG) and its latest one (JPEG)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse, StreamingResponse

from sightline.api.auth import require_read
from sightline.api.errors import ApiError
from sightline.api.live_page import LIVE_HTML
from sightline.api.login_page import session_page
from sightline.api.mjpeg import MEDIA_TYPE, NoFrame
from sightline.drawing import overlays

router = APIRouter(tags=["live"])


@router.get("/", include_in_schema=False)
async def root() -> RedirectResponse:
    return RedirectResponse("/live")


@router.get("/live", response_class=HTMLResponse)
async def live(request: Request) -> Response:
    """Plain HTML + JS: frames arrive over stream.mjpg, alerts and camera state over /v1/stream (SSE).

    Without a valid session (or header) a browser is sent to the login page instead of a 401.
    """
    return session_page(request, LIVE_HTML)


@router.get("/v1/cameras/{camera_id}/overlays", tags=["cameras"], dependencies=[Depends(require_read)])
async def camera_overlays(camera_id: str, request: Request) -> dict[str, Any]:
    """Zones and counting lines drawn on this camera's frames (from `alerts` rules)."""
    return {"camera_id": camera_id, "shapes": overlays(request.app.state.rules.get(camera_id))}


@router.get(
    "/v1/cameras/{camera_id}/frame.jpg",
    tags=["cameras"],
    dependencies=[Depends(require_read)],
    responses={200: {"content": {"image/jpeg": {}}}},
)
async def frame_jpg(camera_id: str, request: Request) -> Response:
    """Latest frame with detections (boxes, labels, track ids) and the camera's zones and lines."""
    try:
        frame = await asyncio.to_thread(request.app.state.live_feeds.renderer.render, camera_id)
    except NoFrame as exc:
        code = "no_frame" if request.app.state.tail_state.latest(camera_id)[0] is None else "frame_gone"
        raise ApiError(404, code, str(exc)) from None
    except ValueError as exc:
        raise ApiError(422, "undecodable_frame", str(exc)) from None
    headers = {
        "Cache-Control": "no-store",
        "X-Frame-Seq": str(frame.seq),
        "X-Capture-Ns": str(frame.capture_ns),
        "X-Detections": str(frame.detections),
    }
    return Response(frame.jpeg, media_type="image/jpeg", headers=headers)


@router.get(
    "/v1/cameras/{camera_id}/stream.mjpg",
    tags=["cameras"],
    dependencies=[Depends(require_read)],
    responses={200: {"content": {MEDIA_TYPE: {}}}},
)
async def stream_mjpg(camera_id: str, request: Request) -> StreamingResponse:
    """Annotated frames as they are drawn (MJPEG, one part per detections record).

    Each part has Content-Length, X-Frame-Seq and X-Capture-Ns headers. A client that reads
    slowly skips frames. The response ends after `api.live_stream_max_s`; reconnect to go on.
    """
    if not request.app.state.tail_state.knows(camera_id):
        raise ApiError(404, "no_camera", f"camera {camera_id!r} is not configured and was not seen")
    app = request.app
    stopping = app.state.stopping
    max_s = app.state.config.api.live_stream_max_s

    async def parts() -> AsyncIterator[bytes]:
        deadline = time.monotonic() + max_s
        async with app.state.live_feeds.subscribe(camera_id) as queue:
            while not stopping.is_set() and time.monotonic() < deadline:
                try:
                    frame = await asyncio.wait_for(queue.get(), timeout=1.0)
                except TimeoutError:
                    continue
                yield frame.part()

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(parts(), media_type=MEDIA_TYPE, headers=headers)
