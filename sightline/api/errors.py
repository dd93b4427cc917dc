"""One JSON error shape for every 4xx/5xx the API raises: {"error": code, "detail": message}."""

from __future__ import annotations

import redis
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

RETRY_AFTER_S = 5  # what a 503 during a Kafka or Redis outage tells clients to wait


class ApiError(Exception):
    """Raised by handlers; `code` is a stable machine-readable token, `detail` is for people."""

    def __init__(self, status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.headers = status, code, detail, headers


class DependencyDown(Exception):
    """Kafka or Redis cannot be reached right now: the request gets a 503 with Retry-After, not a 500."""

    def __init__(self, dependency: str, reason: str) -> None:
        super().__init__(f"{dependency} is unavailable: {reason}")
        self.dependency, self.reason = dependency, reason


def unavailable(dependency: str, reason: str) -> JSONResponse:
    return JSONResponse(
        {
            "error": f"{dependency}_unavailable",
            "detail": f"{dependency} is unavailable ({reason}); retry later",
        },
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _handle(_request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(
            {"error": exc.code, "detail": exc.detail}, status_code=exc.status, headers=exc.headers
        )

    @app.exception_handler(DependencyDown)
    async def _down(_request: Request, exc: DependencyDown) -> JSONResponse:
        return unavailable(exc.dependency, exc.reason)

    @app.exception_handler(redis.ConnectionError)
    @app.exception_handler(redis.TimeoutError)
    async def _redis_down(request: Request, exc: redis.RedisError) -> JSONResponse:
        request.app.state.health.degraded("redis", f"{type(exc).__name__}: {exc}")
        return unavailable("redis", str(exc))
