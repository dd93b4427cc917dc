"""The rules API against the real broker: versions, the editor's per-camera calls, try, and the
live view's overlays following the version in force."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sightline.api import create_app
from sightline.api.server import ServerThread
from tests.alerts.helpers import produce_records
from tests.alerts.rules_scenario import camera_rules, records, rules_v1
from tests.conftest import Stack

ADMIN = {"Authorization": "Bearer rules-admin-token"}
READ = {"Authorization": "Bearer rules-read-token"}


@pytest.fixture(scope="module")
def api(stack: Stack) -> Iterator[tuple[Any, httpx.Client]]:
    config = stack.fresh_config("rules-api", partitions=1)
    config = config.model_copy(
        update={"alerts": config.alerts.model_validate({**config.alerts.model_dump(), "rules": rules_v1()})}
    )
    config.api.admin_token = ADMIN["Authorization"][7:]
    config.api.read_token = READ["Authorization"][7:]
    produce_records(config, records(cameras=2, frames=200))
    with (
        ServerThread(create_app(config, load_model=False)) as server,
        httpx.Client(base_url=server.url, timeout=60) as client,
    ):
        yield config, client


def _eventually(check: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def _line(client: httpx.Client) -> list[list[float]]:
    shapes = client.get("/v1/cameras/cam-0/overlays", headers=READ).json()["shapes"]
    return [s["points"] for s in shapes if s["kind"] == "line"][0]


@pytest.mark.timeout(180)
def test_editor_calls_validate_try_save_and_rollback(api: tuple[Any, httpx.Client]) -> None:
    _config, client = api
    assert client.get("/v1/rules").status_code == 401
    assert client.get("/v1/rules", headers=READ).json() == {"in_force": 0, "versions": []}
    mine = client.get("/v1/cameras/cam-0/rules", headers=READ).json()
    assert mine["version"] == 0 and mine["rules"]["lanes"][0]["line"]["start"] == [0.0, 288.0]
    assert _eventually(lambda: client.get("/v1/cameras/cam-0/rules", headers=READ).json()["frame"]) == {
        "width": 768,
        "height": 576,
    }
    assert client.get("/v1/cameras/nope/rules", headers=READ).json()["rules"] is None

    # Validation: one message per field, at its path inside the camera's block.
    draft = camera_rules("cam-0", k=3)
    draft["lanes"][0]["line"] = {"start": [0, 300], "end": [768, 300], "band_px": -2}
    checked = client.post("/v1/cameras/cam-0/rules/validate", headers=READ, json={"rules": draft}).json()
    assert checked["valid"] is False
    assert [e["path"] for e in checked["errors"]] == ["lanes.0.line.band_px"]
    assert "greater than or equal to 0" in checked["errors"][0]["message"]
    whole = client.post(
        "/v1/rules/validate", headers=READ, json={"rules": {"cameras": [{"camera": "x", "k": 1}]}}
    )
    assert whole.json()["errors"][0]["path"] == "cameras.0.k"
    draft["lanes"][0]["line"]["band_px"] = 4
    assert client.post("/v1/cameras/cam-0/rules/validate", headers=READ, json={"rules": draft}).json() == {
        "valid": True,
        "errors": [],
    }

    # Try: the draft and the rules in force on the same recent records, side by side.
    tried = client.post("/v1/cameras/cam-0/rules/try", headers=READ, json={"rules": draft, "minutes": 30})
    assert tried.status_code == 200, tried.text
    body = tried.json()
    assert body["records"] == 200 and body["live_version"] == 0
    assert 0 < body["draft"]["count"] < body["live"]["count"]
    assert {a["rules_version"] for a in body["live"]["alerts"]} == {0}
    assert all("evidence_urls" in a for a in body["draft"]["alerts"])

    # Save: admin only, against the version the edit started from.
    url = "/v1/cameras/cam-0/rules"
    assert client.put(url, headers=READ, json={"rules": draft}).status_code == 403
    stale = client.put(url, headers=ADMIN, json={"rules": draft, "base_version": 7})
    assert stale.status_code == 409 and stale.json()["error"] == "version_conflict"
    saved = client.put(url, headers=ADMIN, json={"rules": draft, "comment": "line lower", "base_version": 0})
    assert saved.status_code == 200, saved.text
    assert saved.json()["version"] == 1 and saved.json()["comment"] == "line lower"
    assert _eventually(lambda: _line(client) == [[0.0, 300.0], [768.0, 300.0]])
    listing = client.get("/v1/rules", headers=READ).json()
    assert listing["in_force"] == 1 and listing["versions"][0]["author"] == "api"
    diff = client.get("/v1/rules/diff", headers=READ).json()
    assert (diff["old"], diff["new"]) == (0, 1)
    assert diff["changes"]["cam-0"]["changed"] == ["door", "scratch"]
    assert diff["changes"]["cam-1"]["kept"] == ["door", "scratch"]
    assert (
        client.get("/v1/rules/versions/1", headers=READ).json()["rules"]["cameras"][0]["defects"][0]["k"] == 3
    )
    assert client.get("/v1/rules/versions/9", headers=READ).status_code == 404

    # Rollback: the old line is back in the overlays, as a new version.
    assert client.post("/v1/rules/rollback", headers=READ, json={}).status_code == 403
    back = client.post("/v1/rules/rollback", headers=ADMIN, json={"comment": "undo"})
    assert back.status_code == 201, back.text
    assert (back.json()["version"], back.json()["copied_from"]) == (2, 0)
    assert _eventually(lambda: _line(client) == [[0.0, 288.0], [768.0, 288.0]])
    again = client.post("/v1/rules", headers=ADMIN, json={"rules": rules_v1(), "base_version": 2})
    assert again.status_code == 201 and again.json()["version"] == 3
