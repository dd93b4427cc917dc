"""The rules editor in the live view: the page, the rules JSON Schema its forms are generated
from, and the camera's current frame without the zones and lines in force (the page draws the
draft's own over it). Everything else the page needs is the rules API (`routes/rules.py`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse

from alerts.settings import CameraRules
from sightline.api.auth import require_read
from sightline.api.errors import ApiError
from sightline.api.login_page import session_page
from sightline.api.mjpeg import NoFrame
from sightline.api.rules_page import RULES_HTML

router = APIRouter(tags=["rules"])


@router.get("/live/rules/{camera_id}", response_class=HTMLResponse)
async def rules_page(camera_id: str, request: Request) -> Response:
    """Plain HTML + JS; without a session a browser goes to the login page. Anyone who may read
    sees the rules; saving needs an admin session (the page says so)."""
    return session_page(request, RULES_HTML)


@router.get("/v1/rules/schema", dependencies=[Depends(require_read)])
async def rules_schema() -> dict[str, Any]:
    """JSON Schema of one camera's rules block (`CameraRules`): the editor's forms follow it,
    so a field added to the rules model shows up on the page without a page change."""
    return CameraRules.model_json_schema()


@router.get(
    "/v1/cameras/{camera_id}/rules/frame.jpg",
    tags=["cameras"],
    dependencies=[Depends(require_read)],
    responses={200: {"content": {"image/jpeg": {}}}},
)
async def editor_frame(camera_id: str, request: Request) -> Response:
    """The latest frame with its detections but without the zones and lines in force."""
    renderer = request.app.state.live_feeds.renderer
    try:
        frame = await asyncio.to_thread(renderer.render, camera_id, False)
    except NoFrame as exc:
        raise ApiError(404, "no_frame", str(exc)) from None
    except ValueError as exc:
        raise ApiError(422, "undecodable_frame", str(exc)) from None
    headers = {"Cache-Control": "no-store", "X-Frame-Seq": str(frame.seq)}
    return Response(frame.jpeg, media_type="image/jpeg", headers=headers)
