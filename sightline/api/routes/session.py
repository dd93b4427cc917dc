"""Browser login for the live view: POST the token once, get an HttpOnly SameSite=Strict cookie."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from sightline.api.auth import SESSION_COOKIE, make_session, principal_of, session_principal
from sightline.api.errors import ApiError
from sightline.api.login_page import PAGE_HEADERS, login_html
from sightline.api.parsing import ascii_int

router = APIRouter(tags=["session"])

MAX_LOGIN_BYTES = 4096  # one token field; anything bigger is not a login


@router.get("/login", response_class=HTMLResponse)
async def login_page() -> HTMLResponse:
    return HTMLResponse(login_html(), headers=PAGE_HEADERS)


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    """Form field `token` (read or admin token) -> session cookie for reads, then the live view."""
    api = request.app.state.config.api
    if api.read_token is None and api.admin_token is None and not api.review_tokens:
        raise ApiError(503, "auth_not_configured", "no api.read_token or api.admin_token is configured")
    length = ascii_int(request.headers.get("content-length", ""))
    if length is None:
        raise ApiError(411, "length_required", "a login form needs a Content-Length")
    if length > MAX_LOGIN_BYTES:
        raise ApiError(413, "login_too_large", f"a login form is at most {MAX_LOGIN_BYTES} bytes")
    form = await request.form(max_files=0, max_fields=4)
    token = form.get("token")
    found = principal_of(api, token.strip()) if isinstance(token, str) and token.strip() else None
    if found is None:
        return HTMLResponse(login_html("That token is not valid."), status_code=401, headers=PAGE_HEADERS)
    role, who = found
    response = RedirectResponse("/live", status_code=303, headers=PAGE_HEADERS)
    response.set_cookie(
        SESSION_COOKIE,
        make_session(api, role, who=who),
        max_age=api.session_ttl_s,
        path="/",
        httponly=True,
        samesite="strict",
        # Behind a TLS proxy run uvicorn with --proxy-headers so the scheme reads https here.
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/logout")
async def logout() -> Response:
    response = RedirectResponse("/login", status_code=303, headers=PAGE_HEADERS)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


@router.get("/v1/session")
async def whoami(request: Request) -> dict[str, Any]:
    """Who this browser's session is, and whether it may give verdicts (the review page asks)."""
    cookie = request.cookies.get(SESSION_COOKIE)
    found = session_principal(request.app.state.config.api, cookie) if cookie else None
    role, who = found if found is not None else (None, None)
    return {"role": role, "who": who, "can_review": role in ("admin", "review")}
