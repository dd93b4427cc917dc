"""The live view: an HTML page plus the annotated latest frame of each camera."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from schemas.errors import ContractError
from sightline.api.auth import require_read
from sightline.api.errors import ApiError
from sightline.api.live_page import LIVE_HTML
from sightline.api.login_page import PAGE_HEADERS
from sightline.api.render import overlays, render_jpeg

router = APIRouter(tags=["live"])


@router.get("/", include_in_schema=False)
async def root() -> RedirectResponse:
    return RedirectResponse("/live")


@router.get("/live", response_class=HTMLResponse)
async def live(request: Request) -> Response:
    """Plain HTML + JS: frames refresh by polling frame.jpg, alerts arrive over /v1/stream (SSE).

    Without a valid session (or header) a browser is sent to the login page instead of a 401.
    """
    try:
        require_read(request)
    except ApiError as exc:
        if exc.status in (401, 403):
            return RedirectResponse("/login", status_code=303)
        raise
    return HTMLResponse(LIVE_HTML, headers=PAGE_HEADERS)


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
    app = request.app
    record, payload = app.state.tail_state.latest(camera_id)
    if record is None:
        raise ApiError(404, "no_frame", f"no detections seen yet for camera {camera_id!r}")
    if payload is None:
        try:
            payload = await asyncio.to_thread(app.state.fetcher.fetch, record)
        except ContractError as exc:
            raise ApiError(404, "frame_gone", str(exc)) from None
    if payload is None:
        raise ApiError(404, "frame_gone", "the frame record is no longer available")
    shapes = overlays(app.state.rules.get(camera_id))
    try:
        jpeg = await asyncio.to_thread(
            render_jpeg, payload, record, shapes, app.state.config.api.live_jpeg_quality
        )
    except ValueError as exc:
        raise ApiError(422, "undecodable_frame", str(exc)) from None
    headers = {
        "Cache-Control": "no-store",
        "X-Frame-Seq": str(record.seq),
        "X-Capture-Ns": str(record.capture_ns),
        "X-Detections": str(len(record.detections.xyxy)),
    }
    return Response(jpeg, media_type="image/jpeg", headers=headers)
