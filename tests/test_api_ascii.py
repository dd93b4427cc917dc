"""Non-ASCII digits and cookies get the API's 4xx, never a 500 (real uvicorn, no broker).

`str.isdigit()` is true for "²" or "٣", which `int()` then refuses (or reads as a number), and
`hmac.compare_digest` raises TypeError on a `str` with non-ASCII characters. Headers reach the
app decoded as latin-1, so a client reaches both with bytes such as b"\\xb2" ("²") and b"\\xe9".
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from starlette.requests import Request

from sightline.api import create_app
from sightline.api.auth import SESSION_COOKIE, make_session, session_role
from sightline.api.errors import ApiError
from sightline.api.parsing import ascii_int
from sightline.api.routes.session import login
from sightline.api.routes.stream import resume_after
from sightline.api.server import ServerThread
from sightline.api.upload import read_upload
from sightline.config import SightlineConfig

READ = "read-token-0123456789"


@contextlib.contextmanager
def _api(**api: object) -> Iterator[tuple[FastAPI, httpx.Client]]:
    app = create_app(SightlineConfig(api=api), tail=False, load_model=False)
    with ServerThread(app) as server, httpx.Client(base_url=server.url, timeout=10) as client:
        yield app, client


def _cookie(value: str) -> dict[str, bytes]:
    return {"Cookie": f"{SESSION_COOKIE}={value}".encode("latin-1")}


def test_a_session_cookie_with_non_ascii_digits_or_mac_is_unauthorized() -> None:
    future = str(int(time.time()) + 3600)
    with _api(read_token=READ) as (app, client):
        good = make_session(app.state.config.api, "read")
        assert client.get("/v1/cameras", headers=_cookie(good)).status_code == 200
        for forged in (f"read.{'²' * 10}.{'0' * 64}", f"read.{future}.{'é' * 64}", "read.²." + "é" * 64):
            response = client.get("/v1/cameras", headers=_cookie(forged))
            assert response.status_code == 401, (forged, response.status_code, response.text)
            assert response.json()["error"] == "unauthorized"


def test_session_role_refuses_digits_of_other_scripts() -> None:
    api = SightlineConfig(api={"read_token": READ}).api
    role, expires, mac = make_session(api, "read").split(".")
    assert session_role(api, f"{role}.{expires}.{mac}") == "read"
    arabic = expires.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    assert int(arabic) == int(expires), "int() reads them: only the ASCII check refuses them"
    assert session_role(api, f"{role}.{arabic}.{mac}") is None
    assert session_role(api, f"{role}.{expires}.{mac[:-1]}é") is None


def test_a_last_event_id_with_non_ascii_digits_gets_the_backlog() -> None:
    with _api() as (app, client):
        boot = app.state.tail_state.boot
        headers = {"Last-Event-ID": f"{boot}:²".encode("latin-1")}
        with client.stream("GET", "/v1/stream", headers=headers, timeout=10) as response:
            assert response.status_code == 200
    assert resume_after(f"{boot}:7", boot) == 7
    assert resume_after(f"{boot}:٧", boot) is None and resume_after(f"{boot}:²", boot) is None


def _request(app: FastAPI, content_length: bytes, body: bytes) -> Request:
    """A request as the ASGI server hands it over, Content-Length as sent: uvicorn's own parser
    refuses a non-ASCII one, another server (or a proxy in front) may pass it on."""
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/",
        "query_string": b"",
        "headers": [(b"content-length", content_length), (b"content-type", b"application/octet-stream")],
        "app": app,
    }

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(scope, receive)


def test_a_non_ascii_content_length_is_no_length() -> None:
    app = create_app(SightlineConfig(api={"read_token": READ}), tail=False, load_model=False)
    with pytest.raises(ApiError) as refused:
        asyncio.run(login(_request(app, b"\xb2", b"token=x")))  # "\xb2" is "²" in latin-1
    assert refused.value.status == 411
    assert asyncio.run(read_upload(_request(app, b"\xb2", b"jpeg"), limit=100)) == b"jpeg"


def test_ascii_int() -> None:
    assert ascii_int("0042") == 42
    assert [ascii_int(s) for s in ("", "-1", "4.2", "²", "٣", "4²", " 4")] == [None] * 7
