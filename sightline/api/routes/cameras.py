"""Cameras and alerts from the tail consumer's in-memory state (the SSE feed is in `stream`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from sightline.api.auth import require_read

router = APIRouter(prefix="/v1", tags=["cameras"], dependencies=[Depends(require_read)])


@router.get("/cameras")
async def cameras(request: Request) -> dict[str, Any]:
    """Per camera: online state, fps in (frames) and out (detections), last frame age, inference lag."""
    return {"cameras": request.app.state.tail_state.cameras_view()}


@router.get("/alerts")
async def alerts(
    request: Request,
    camera: str | None = None,
    type: str | None = Query(None, description="Alert type, e.g. tally, drift."),  # noqa: A002
    limit: int = Query(50, ge=1, le=1000),
) -> dict[str, Any]:
    """Recent alerts from the alerts topic, newest first."""
    items = request.app.state.tail_state.recent_alerts(camera, type, limit)
    return {"alerts": [alert for _seq, alert in items]}
