"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sightline.api.probe import PROBE_TIMEOUT_S

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up (no dependencies checked: restarts will not fix Kafka)."""
    return {"status": "ok"}


def _check(state: dict[str, Any], now: float) -> dict[str, Any]:
    since = datetime.fromtimestamp(now - float(state["for_s"]), UTC).isoformat(timespec="seconds")
    detail = "ok" if state["up"] else str(state.get("reason", ""))
    return {"ok": state["up"], "detail": detail, "since": since, "for_s": state["for_s"]}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """Ready when Kafka and Redis answer, the tail runs and the model is loaded.

    While degraded it answers 503 and says which dependency is down, why and since when.
    """
    app = request.app
    probe = app.state.probe
    if probe is not None and not probe.checked.is_set():
        await asyncio.to_thread(probe.checked.wait, 2 * PROBE_TIMEOUT_S + 1)
    now = datetime.now(UTC).timestamp()
    checks = {name: _check(state, now) for name, state in app.state.health.snapshot().items()}
    batcher = app.state.batcher
    model = batcher.model() if batcher is not None and batcher.loaded else None
    checks["model"] = {"ok": model is not None, "detail": f"{model[0]} {model[1]}" if model else "not loaded"}
    ready = probe is not None and all(c["ok"] for c in checks.values())
    return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)


@router.get("/metrics")
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
