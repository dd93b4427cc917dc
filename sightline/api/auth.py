"""Bearer-token checks: writes always need the token, reads only when `public_reads` is off."""

from __future__ import annotations

import hmac

from fastapi import Request

from sightline.api.errors import ApiError
from sightline.config import SightlineConfig


def _check(request: Request, token: str | None, allow_query: bool) -> None:
    if token is None:
        raise ApiError(503, "auth_not_configured", "no api.token is configured; this endpoint is disabled")
    header = request.headers.get("authorization", "")
    given = header[7:].strip() if header[:7].lower() == "bearer " else None
    if given is None and allow_query:
        # <img> and EventSource cannot send headers: the live page may pass ?access_token=.
        given = request.query_params.get("access_token")
    if not given:
        raise ApiError(401, "unauthorized", "missing bearer token", {"WWW-Authenticate": "Bearer"})
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise ApiError(403, "forbidden", "invalid token")


def _config(request: Request) -> SightlineConfig:
    return request.app.state.config


def require_write(request: Request) -> None:
    """Dependency for mutating endpoints."""
    _check(request, _config(request).api.token, allow_query=False)


def require_read(request: Request) -> None:
    """Dependency for read-only endpoints; open when `api.public_reads` is true."""
    config = _config(request)
    if not config.api.public_reads:
        _check(request, config.api.token, allow_query=True)
