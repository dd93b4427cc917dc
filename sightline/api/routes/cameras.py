"""Cameras and alerts from the tail consumer's in-memory state, plus the SSE feed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

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


def _sse(event: str, data: Any, event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


@router.get("/stream")
async def stream(request: Request, backlog: int = Query(20, ge=0, le=500)) -> StreamingResponse:
    """Server-sent events: `alert` for each new alert (after a short backlog), `cameras` every second."""
    state = request.app.state.tail_state
    stopping = request.app.state.stopping

    async def events() -> AsyncIterator[str]:
        last = 0
        for seq, alert in reversed(state.recent_alerts(limit=backlog)):
            last = seq
            yield _sse("alert", alert, seq)
        last = max(last, state.alert_seq)
        tick = 0
        while not stopping.is_set() and not await request.is_disconnected():
            fresh = state.recent_alerts(limit=500, after=last)
            for seq, alert in reversed(fresh):
                last = seq
                yield _sse("alert", alert, seq)
            if tick % 4 == 0:
                yield _sse("cameras", state.cameras_view())
            tick += 1
            await asyncio.sleep(0.25)

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)
