"""Who may save rules from the editor page: an admin session, and only from this server's pages
as JSON; the page and the schema its forms follow (no broker needed)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from sightline.api import errors
from sightline.api.auth import SESSION_COOKIE, make_session, require_rules_admin
from sightline.api.routes import rules_editor
from sightline.config import SightlineConfig

ADMIN, READ = "editor-admin-0123456789", "editor-read-0123456789"
ORIGIN = {"origin": "http://testserver"}


@pytest.fixture
def client() -> Iterator[TestClient]:
    config = SightlineConfig(api={"admin_token": ADMIN, "read_token": READ})
    app = FastAPI()
    app.state.config = config
    errors.install(app)
    app.include_router(rules_editor.router)

    @app.put("/save")
    def save(who: str | None = Depends(require_rules_admin)) -> dict[str, str | None]:
        return {"who": who}

    with TestClient(app) as c:
        c.sessions = {role: make_session(config.api, role) for role in ("admin", "read")}  # type: ignore[attr-defined]
        yield c


def _as(client: TestClient, role: str) -> None:
    client.cookies.set(SESSION_COOKIE, client.sessions[role])  # type: ignore[attr-defined]


def test_an_admin_session_saves_only_from_this_server_as_json(client: TestClient) -> None:
    assert client.put("/save", json={}).status_code == 401
    assert client.put("/save", json={}, headers={"Authorization": f"Bearer {ADMIN}"}).json() == {"who": None}
    assert client.put("/save", json={}, headers={"Authorization": f"Bearer {READ}"}).status_code == 403
    _as(client, "admin")
    assert client.put("/save", json={}, headers=ORIGIN).json() == {"who": "admin (live view)"}
    assert client.put("/save", json={}).status_code == 403, "no Origin: not from this server's pages"
    assert client.put("/save", json={}, headers={"origin": "http://evil.example"}).status_code == 403
    assert client.put("/save", data={"a": "1"}, headers=ORIGIN).status_code == 415
    _as(client, "read")
    refused = client.put("/save", json={}, headers=ORIGIN)
    assert refused.status_code == 403 and "log in as admin" in refused.json()["detail"]
    client.cookies.set(SESSION_COOKIE, "admin.1.forged")
    assert client.put("/save", json={}, headers=ORIGIN).status_code == 401


def test_the_page_needs_a_session_and_the_schema_lists_every_rule_kind(client: TestClient) -> None:
    page = client.get("/live/rules/lobby", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/login"
    _as(client, "read")
    page = client.get("/live/rules/lobby")
    assert page.status_code == 200 and "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert ADMIN not in page.text and READ not in page.text
    schema = client.get("/v1/rules/schema").json()
    assert {"lanes", "defects", "anomalies", "thresholds"} <= set(schema["properties"])
    assert "LineSettings" in schema["$defs"]
