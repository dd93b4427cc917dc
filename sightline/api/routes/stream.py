"""The live view's server-sent events: alerts (resumable with Last-Event-ID) and camera state."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse

from sightline.api.auth import require_read
from sightline.api.parsing import ascii_int

router = APIRouter(prefix="/v1", tags=["cameras"], dependencies=[Depends(require_read)])

RETRY_MS = 1000  # how long a browser waits before it reconnects


def _sse(event: str, data: Any, event_id: str) -> str:
    return f"id: {event_id}\nevent: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def resume_after(last_event_id: str | None, boot: str) -> int | None:
    """The alert sequence number to resume after, or None to start with the backlog.

    Ids are `<boot>:<seq>`; an id from another API process (restart, other replica) does not
    resume: its numbers mean nothing here, so the client gets the backlog (the page de-duplicates).
    """
    if not last_event_id:
        return None
    event_boot, _, seq = last_event_id.strip().partition(":")
    return ascii_int(seq) if event_boot == boot else None


@router.get("/stream")
async def stream(
    request: Request,
    backlog: int = Query(20, ge=0, le=500),
    last_event_id: str | None = Header(None, description="Sent by EventSource when it reconnects."),
) -> StreamingResponse:
    """Server-sent events: `alert` per alert, `cameras` every second (the cameras the live view shows).

    Every event has an `id`; reconnecting with it as `Last-Event-ID` continues with the alerts
    after it instead of the backlog. A response ends after `api.live_stream_max_s` (EventSource
    reconnects by itself, so an expired session is noticed).
    """
    state = request.app.state.tail_state
    api = request.app.state.config.api
    stopping = request.app.state.stopping
    after = resume_after(last_event_id, state.boot)

    async def events() -> AsyncIterator[str]:
        deadline = time.monotonic() + api.live_stream_max_s
        yield f"retry: {RETRY_MS}\n\n"
        if after is None:
            last = state.alert_seq
            items = state.recent_alerts(limit=backlog) if backlog else []
        else:
            items = state.recent_alerts(limit=api.recent_alerts, after=after)
            last = after
        for seq, alert in reversed(items):
            last = seq
            yield _sse("alert", alert, f"{state.boot}:{seq}")
        tick = 0
        while not stopping.is_set() and time.monotonic() < deadline and not await request.is_disconnected():
            for seq, alert in reversed(state.recent_alerts(limit=api.recent_alerts, after=last)):
                last = seq
                yield _sse("alert", alert, f"{state.boot}:{seq}")
            if tick % 4 == 0:
                yield _sse("cameras", state.cameras_view(api.live_hide_after_s), f"{state.boot}:{last}")
            tick += 1
            await asyncio.sleep(0.25)

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)
