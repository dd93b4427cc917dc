"""The review page: alerts with their snapshot and clip, and a reviewer's verdict on each.

`GET /live/alerts` is the page; `GET /v1/review/alerts` lists alerts newest first (camera, type,
time filters) with their evidence status and verdict; `POST /v1/alerts/{id}/verdict` writes a
feedback record to the feedback topic (admin or review token: `auth.require_reviewer`).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from confluent_kafka import KafkaException, Producer
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict

from schemas.feedback import Verdict
from sightline.api.alert_index import AlertFilter
from sightline.api.auth import require_read, require_reviewer
from sightline.api.errors import ApiError
from sightline.api.login_page import session_page
from sightline.api.review_page import REVIEW_HTML
from sightline.api.routes.evidence import ALERT_ID, known_alert
from sightline.review.feedback import publish, verdict_for
from streams.kafka import make_producer

router = APIRouter(tags=["review"])
NS = 1_000_000_000
_producer_lock = threading.Lock()


class VerdictBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    verdict: Verdict


@router.get("/live/alerts", response_class=HTMLResponse)
async def review_page(request: Request) -> Response:
    """Plain HTML + JS, like the live view; without a session a browser goes to the login page."""
    return session_page(request, REVIEW_HTML)


@router.get("/v1/review/alerts", dependencies=[Depends(require_read)])
def review_alerts(
    request: Request,
    camera: str | None = None,
    type: str | None = Query(None, description="Alert type, e.g. defect, scan_gap."),  # noqa: A002
    since: float | None = Query(None, description="Created at or after (Unix seconds)."),
    until: float | None = Query(None, description="Created at or before (Unix seconds)."),
    limit: int = Query(100, ge=1, le=1000),
) -> dict[str, Any]:
    """Alerts newest first, each with its evidence status and latest verdict."""
    query = AlertFilter(
        camera=camera,
        type=type,
        since_ns=int(since * NS) if since is not None else None,
        until_ns=int(until * NS) if until is not None else None,
        limit=limit,
    )
    return request.app.state.alert_index.list(query)


def _producer(request: Request) -> Producer:
    state = request.app.state
    with _producer_lock:
        if state.feedback_producer is None:
            state.feedback_producer = make_producer(state.config.kafka, "sightline-api-feedback")
        return state.feedback_producer


@router.post("/v1/alerts/{alert_id}/verdict")
async def give_verdict(
    alert_id: str, body: VerdictBody, request: Request, who: str = Depends(require_reviewer)
) -> dict[str, Any]:
    """Confirm an alert or mark it a false positive; the latest verdict of an alert wins."""
    if not ALERT_ID.match(alert_id):
        raise ApiError(404, "unknown_alert", "alert ids are 32 hex digits")
    alert = known_alert(request, alert_id)
    record = verdict_for(alert, body.verdict, who)
    topic = request.app.state.config.topics.feedback.name
    try:
        await asyncio.to_thread(publish, _producer(request), topic, record)
    except KafkaException as exc:
        raise ApiError(503, "feedback_unavailable", f"the verdict was not stored: {exc}") from None
    request.app.state.verdicts.set(record)
    return {"verdict": record.model_dump()}
