"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio
from typing import Any

import redis
from confluent_kafka.admin import AdminClient
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up (no dependencies checked: restarts will not fix Kafka)."""
    return {"status": "ok"}


def _kafka_ok(request: Request) -> tuple[bool, str]:
    config = request.app.state.config
    try:
        admin = AdminClient(
            {
                "bootstrap.servers": config.kafka.bootstrap_servers,
                "socket.timeout.ms": 2000,
                **config.kafka.extra,
            }
        )
        admin.list_topics(timeout=2)
        return True, "reachable"
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        return False, str(exc)


def _redis_ok(request: Request) -> tuple[bool, str]:
    try:
        client = redis.Redis.from_url(request.app.state.config.redis.url, socket_timeout=2)
        try:
            client.ping()
        finally:
            client.close()
        return True, "reachable"
    except Exception as exc:  # noqa: BLE001
        return False, str(exc)


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """Ready when Kafka and Redis answer and the model is loaded; 503 lists what is missing."""
    kafka, redis_ = await asyncio.gather(
        asyncio.to_thread(_kafka_ok, request), asyncio.to_thread(_redis_ok, request)
    )
    batcher = request.app.state.batcher
    model = batcher.model() if batcher is not None and batcher.loaded else None
    checks: dict[str, Any] = {
        "kafka": {"ok": kafka[0], "detail": kafka[1]},
        "redis": {"ok": redis_[0], "detail": redis_[1]},
        "model": {"ok": model is not None, "detail": f"{model[0]} {model[1]}" if model else "not loaded"},
    }
    ready = all(c["ok"] for c in checks.values())
    return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)


@router.get("/metrics")
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
