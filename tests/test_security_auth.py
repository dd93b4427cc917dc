"""Read and admin tokens, the login cookie, and secrets that never show (real uvicorn, real httpx).

The API runs without model or Kafka tail: enough for the auth rules, no broker needed.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from pydantic import ValidationError

from sightline.api import create_app
from sightline.api.auth import SESSION_COOKIE, make_session
from sightline.api.server import ServerThread
from sightline.config import ConfigError, SightlineConfig, load_config

READ = "read-token-0123456789"
ADMIN = "admin-token-9876543210"
ROLLBACK = "/v1/models/no-such-model/rollback"  # auth first: 404 only once past it


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _cookie(value: str) -> dict[str, str]:
    return {"Cookie": f"{SESSION_COOKIE}={value}"}


@contextlib.contextmanager
def _api(**api: object) -> Iterator[httpx.Client]:
    app = create_app(SightlineConfig(api=api), tail=False, load_model=False)
    with ServerThread(app) as server, httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


def test_reads_need_the_read_or_admin_token_and_writes_need_admin() -> None:
    with _api(read_token=READ, admin_token=ADMIN) as client:
        for path in ("/v1/cameras", "/v1/alerts", "/v1/models", "/v1/cameras/c/overlays"):
            assert client.get(path).status_code == 401, path
            assert client.get(path, headers=_bearer(READ)).status_code == 200, path
            assert client.get(path, headers=_bearer(ADMIN)).status_code == 200, path
            assert client.get(path, headers=_bearer("nope")).status_code == 403, path
        missing = client.get("/v1/cameras")
        assert missing.json()["error"] == "unauthorized" and missing.headers["WWW-Authenticate"] == "Bearer"
        # Tokens in URLs are not accepted (they end up in logs, history and Referer headers).
        assert client.get("/v1/cameras", params={"access_token": READ}).status_code == 401
        assert client.get("/v1/cameras", params={"access_token": ADMIN}).status_code == 401

        assert client.post(ROLLBACK).status_code == 401
        as_reader = client.post(ROLLBACK, headers=_bearer(READ))
        assert as_reader.status_code == 403 and "read token" in as_reader.json()["detail"]
        assert client.post(ROLLBACK, headers=_bearer("nope")).status_code == 403
        as_admin = client.post(ROLLBACK, headers=_bearer(ADMIN))
        assert as_admin.status_code == 404 and as_admin.json()["error"] == "unknown_model", as_admin.text
        # Probes and scrapes stay open.
        assert client.get("/healthz").status_code == 200
        assert client.get("/metrics").status_code == 200


def test_without_a_read_token_public_reads_decides() -> None:
    with _api(admin_token=ADMIN) as client:
        assert client.get("/v1/cameras").status_code == 200
        assert client.post(ROLLBACK).status_code == 401
    with _api(admin_token=ADMIN, public_reads=False) as client:
        assert client.get("/v1/cameras").status_code == 401
        assert client.get("/v1/cameras", headers=_bearer(ADMIN)).status_code == 200
    with _api() as client:  # nothing configured: reads open, writes disabled
        assert client.get("/v1/cameras").status_code == 200
        disabled = client.post(ROLLBACK, headers=_bearer(ADMIN))
        assert disabled.status_code == 503 and disabled.json()["error"] == "auth_not_configured"
    with _api(public_reads=False) as client:
        assert client.get("/v1/cameras").status_code == 503


def test_login_sets_an_httponly_strict_cookie_that_authorises_reads_only() -> None:
    with _api(read_token=READ, admin_token=ADMIN) as client:
        live = client.get("/live")
        assert live.status_code == 303 and live.headers["location"] == "/login"
        page = client.get("/login")
        assert page.status_code == 200 and 'type="password"' in page.text
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]

        wrong = client.post("/login", data={"token": "nope"})
        assert wrong.status_code == 401 and "not valid" in wrong.text and SESSION_COOKIE not in wrong.cookies

        for token in (READ, ADMIN):
            client.cookies.clear()
            login = client.post("/login", data={"token": token})
            assert login.status_code == 303 and login.headers["location"] == "/live"
            set_cookie = login.headers["set-cookie"]
            attributes = {part.strip().split("=")[0].lower() for part in set_cookie.split(";")}
            assert {"httponly", "path", "max-age"} <= attributes, set_cookie
            assert "samesite=strict" in set_cookie.lower(), set_cookie
            assert token not in set_cookie, "the cookie must not carry the token itself"
            assert "token" not in login.headers["location"]

            assert client.get("/live").status_code == 200
            assert client.get("/v1/cameras").status_code == 200
            # A cookie is sent with any same-site request: it never authorises a mutation.
            assert client.post(ROLLBACK).status_code == 401

        logout = client.post("/logout")
        assert logout.status_code == 303 and SESSION_COOKIE not in client.cookies
        assert client.get("/v1/cameras").status_code == 401


def test_forged_expired_and_rotated_sessions_are_refused() -> None:
    config = SightlineConfig(api={"read_token": READ, "admin_token": ADMIN})
    good = make_session(config.api, "read")
    role, expires, mac = good.split(".")
    forged = {
        "expired": make_session(config.api, "read", now=time.time() - config.api.session_ttl_s - 5),
        "extended": f"{role}.{int(expires) + 10**6}.{mac}",
        "promoted": f"admin.{expires}.{mac}",
        "garbage": "read.x.y",
    }
    with _api(read_token=READ, admin_token=ADMIN) as client:
        assert client.get("/v1/cameras", headers=_cookie(good)).status_code == 200
        for name, value in forged.items():
            assert client.get("/v1/cameras", headers=_cookie(value)).status_code == 401, name
    with _api(read_token=READ + "-rotated", admin_token=ADMIN) as client:
        assert client.get("/v1/cameras", headers=_cookie(good)).status_code == 401


def test_live_page_never_puts_a_token_in_a_url() -> None:
    with _api() as client:
        page = client.get("/live").text
    assert "access_token" not in page and "location.search" not in page


def test_token_is_the_old_name_of_admin_token(monkeypatch: pytest.MonkeyPatch) -> None:
    assert SightlineConfig(api={"token": ADMIN}).api.admin_token.get_secret_value() == ADMIN
    # A dumped config (admin_token: null) with `token` added, as the demo writes it.
    dumped = {**SightlineConfig().model_dump(mode="json")["api"], "token": ADMIN}
    assert SightlineConfig(api=dumped).api.admin_token.get_secret_value() == ADMIN
    monkeypatch.setenv("SIGHTLINE_API__TOKEN", ADMIN)
    assert SightlineConfig().api.admin_token.get_secret_value() == ADMIN
    monkeypatch.delenv("SIGHTLINE_API__TOKEN")
    with pytest.raises(ValidationError, match="not both"):
        SightlineConfig(api={"token": ADMIN, "admin_token": ADMIN})
    with pytest.raises(ValidationError, match="must differ"):
        SightlineConfig(api={"read_token": ADMIN, "admin_token": ADMIN})


def test_secrets_never_show_in_repr_dumps_errors_or_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = SightlineConfig(api={"read_token": READ, "admin_token": ADMIN})
    dumped = yaml.safe_dump(config.model_dump(mode="json"))
    for shown in (repr(config), str(config.api), config.model_dump_json(), dumped):
        assert READ not in shown and ADMIN not in shown
    # A dumped config holds a placeholder; loading it back fails instead of making it the token.
    (tmp_path / "dumped.yaml").write_text(dumped)
    with pytest.raises(ConfigError, match="masked placeholder"):
        load_config(tmp_path / "dumped.yaml")
    # A config error elsewhere in the section does not echo the tokens.
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"api": {"read_token": READ, "admin_token": ADMIN, "port": "x"}}))
    with pytest.raises(ConfigError) as error:
        load_config(bad)
    assert READ not in str(error.value) and ADMIN not in str(error.value)

    caplog.set_level(logging.DEBUG)
    with _api(read_token=READ, admin_token=ADMIN) as client:
        client.get("/v1/cameras", headers=_bearer(READ))
        refused = client.post(ROLLBACK, headers=_bearer(READ + "x"))
        client.post("/login", data={"token": ADMIN})
        openapi = client.get("/openapi.json").text
    assert READ not in refused.text and READ not in openapi and ADMIN not in openapi
    assert READ not in caplog.text and ADMIN not in caplog.text
