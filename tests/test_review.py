"""Review verdicts: who may give one (admin or reviewer, header or same-origin session), the feedback
record on Kafka, the latest verdict winning, and the alerts list the review page reads."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from schemas.alert import AlertRecord, TimeWindow, alert_id
from sightline.api import create_app
from sightline.api.auth import make_session, principal_of, session_principal
from sightline.api.server import ServerThread
from sightline.config import SightlineConfig
from sightline.evidence.record import EvidenceRecord, record_key
from sightline.evidence.store import LocalDirStore
from sightline.review.feedback import read_verdicts
from streams.kafka import make_producer
from tests.conftest import Stack

READ, ADMIN, ALICE = "review-read-token-0123", "review-admin-token-0123", "review-alice-token-0123"
NS = 1_000_000_000


def _alert(n: int, camera: str = "cam", type_: str = "defect", created_ns: int | None = None) -> AlertRecord:
    now = created_ns or time.time_ns()
    return AlertRecord(
        alert_id=alert_id("review", n, time.time_ns()), type=type_, severity="warning", camera_id=camera,
        rule="r", window=TimeWindow(start_ns=now, end_ns=now), capture_ns=now, created_ns=now,
        summary=f"alert {n}",
    )  # fmt: skip


def _api_settings() -> dict:
    return {
        "read_token": READ,
        "admin_token": ADMIN,
        "review_tokens": {"alice": ALICE},
        "public_reads": False,
    }


def _stored(tmp_path: Path, alert: AlertRecord) -> None:
    store = LocalDirStore(tmp_path)
    store.put(record_key(alert.alert_id), EvidenceRecord.new(alert).model_dump_json().encode())


@contextlib.contextmanager
def _serve(config: SightlineConfig, tail: bool) -> Iterator[tuple[str, httpx.Client]]:
    with (
        ServerThread(create_app(config, tail=tail, load_model=False)) as server,
        httpx.Client(base_url=server.url, timeout=20) as client,
    ):
        yield server.url, client


def _login(client: httpx.Client, token: str) -> None:
    client.cookies.clear()
    response = client.post("/login", data={"token": token}, follow_redirects=False)
    assert response.status_code == 303, response.text


def test_who_may_give_a_verdict(tmp_path: Path) -> None:
    """Refusals happen before anything is published: no broker needed."""
    alert = _alert(1)
    _stored(tmp_path, alert)
    config = SightlineConfig(api=_api_settings(), evidence={"dir": str(tmp_path)})
    with _serve(config, tail=False) as (url, client):
        path, body = f"/v1/alerts/{alert.alert_id}/verdict", {"verdict": "confirmed"}
        assert client.post(path, json=body).status_code == 401, "no token, no session"
        bearer = client.post(path, json=body, headers={"Authorization": f"Bearer {READ}"})
        assert bearer.status_code == 403 and "read token" in bearer.json()["detail"]

        _login(client, READ)
        assert client.get("/v1/session").json() == {"role": "read", "who": "read", "can_review": False}
        refused = client.post(path, json=body, headers={"Origin": url})
        assert refused.status_code == 403, "a read session cannot give verdicts"

        _login(client, ALICE)
        assert client.get("/v1/session").json() == {"role": "review", "who": "alice", "can_review": True}
        assert client.get(f"/v1/alerts/{alert.alert_id}").status_code == 200, "a reviewer can read"
        no_origin = client.post(path, json=body)
        assert no_origin.status_code == 403 and "this server's pages" in no_origin.json()["detail"]
        other_site = client.post(path, json=body, headers={"Origin": "http://127.0.0.1:1"})
        assert other_site.status_code == 403, "another port of the same host is another origin"
        form = client.post(path, data=body, headers={"Origin": url})
        assert form.status_code == 415, "a cross-site <form> can only send form encodings"
        bad = client.post(path, json={"verdict": "maybe"}, headers={"Origin": url})
        assert bad.status_code == 422
        unknown = client.post(f"/v1/alerts/{'0' * 32}/verdict", json=body, headers={"Origin": url})
        assert unknown.status_code == 404

        # The review token is no admin token.
        promote = client.post("/v1/models/x/promote", headers={"Authorization": f"Bearer {ALICE}"})
        assert promote.status_code == 403


def test_verdicts_go_to_the_feedback_topic_and_the_latest_wins(stack: Stack, tmp_path: Path) -> None:
    config = stack.fresh_config("review")
    config.api = config.api.model_validate(_api_settings())
    config.evidence.dir = tmp_path
    base = time.time_ns()
    old = _alert(1, camera="door", type_="scan_gap", created_ns=base - 3600 * NS)
    new = _alert(2, camera="cam", type_="defect", created_ns=base)
    tailed = _alert(3, camera="cam", type_="tally", created_ns=base - 60 * NS)  # no evidence yet
    for alert in (old, new):
        _stored(tmp_path, alert)
    producer = make_producer(config.kafka)
    producer.produce(config.topics.alerts.name, key=b"cam", value=tailed.encode())
    assert producer.flush(10) == 0

    with _serve(config, tail=True) as (url, client):
        _login(client, ALICE)
        path = f"/v1/alerts/{new.alert_id}/verdict"
        given = client.post(path, json={"verdict": "confirmed"}, headers={"Origin": url})
        assert given.status_code == 200, given.text
        assert given.json()["verdict"]["by"] == "alice"
        admin = {"Authorization": f"Bearer {ADMIN}"}
        again = client.post(path, json={"verdict": "false_positive"}, headers=admin)
        assert again.status_code == 200, again.text
        shown = client.get(f"/v1/alerts/{new.alert_id}").json()["verdict"]
        assert (shown["verdict"], shown["by"]) == ("false_positive", "admin"), "the latest verdict wins"

        # The list: newest first, the tailed alert included once the tail has it, filters apply.
        deadline = time.monotonic() + 20
        while len(items := client.get("/v1/review/alerts").json()["alerts"]) < 3:
            assert time.monotonic() < deadline, items
            time.sleep(0.2)
        assert [i["alert"]["alert_id"] for i in items] == [new.alert_id, tailed.alert_id, old.alert_id]
        assert items[0]["verdict"]["verdict"] == "false_positive" and items[1]["verdict"] is None
        assert items[1]["evidence"]["status"] == "pending"
        only = client.get("/v1/review/alerts", params={"camera": "door"}).json()["alerts"]
        assert [i["alert"]["alert_id"] for i in only] == [old.alert_id]
        typed = client.get("/v1/review/alerts", params={"type": "tally"}).json()["alerts"]
        assert [i["alert"]["alert_id"] for i in typed] == [tailed.alert_id]
        since = (base - 120 * NS) / NS
        recent = client.get("/v1/review/alerts", params={"since": since}).json()["alerts"]
        assert {i["alert"]["alert_id"] for i in recent} == {new.alert_id, tailed.alert_id}
        until = client.get("/v1/review/alerts", params={"until": since}).json()["alerts"]
        assert [i["alert"]["alert_id"] for i in until] == [old.alert_id]

    # On the topic: both records, in order; readers keep the latest.
    verdicts = read_verdicts(config.kafka, config.topics.feedback.name)
    assert verdicts[new.alert_id].verdict == "false_positive" and verdicts[new.alert_id].by == "admin"
    assert verdicts[new.alert_id].camera_id == "cam" and verdicts[new.alert_id].alert_type == "defect"

    # Another API process learns the verdict from the topic.
    with _serve(config, tail=True) as (_url, client):
        deadline = time.monotonic() + 20
        while (
            body := client.get(
                f"/v1/alerts/{new.alert_id}", headers={"Authorization": f"Bearer {READ}"}
            ).json()
        )["verdict"] is None:
            assert time.monotonic() < deadline, body
            time.sleep(0.2)
        assert body["verdict"]["verdict"] == "false_positive"


@pytest.mark.parametrize("name", ["a.b", "", "x" * 33])
def test_reviewer_names_are_checked(name: str) -> None:
    with pytest.raises(ValueError, match="reviewer name"):
        SightlineConfig(api={"review_tokens": {name: "some-token-0123456789"}})


def test_review_tokens_must_differ_from_other_tokens() -> None:
    with pytest.raises(ValueError, match="must differ"):
        SightlineConfig(api={"read_token": READ, "review_tokens": {"bob": READ}})


def test_a_review_session_names_its_reviewer_and_ends_with_the_token() -> None:
    api = SightlineConfig(api=_api_settings()).api
    cookie = make_session(api, "review", who="alice")
    assert session_principal(api, cookie) == ("review", "alice")
    _field, expires, mac = cookie.split(".")
    assert session_principal(api, f"review:bob.{expires}.{mac}") is None, "the name is under the MAC"
    assert session_principal(api, f"admin.{expires}.{mac}") is None
    rotated = SightlineConfig(
        api={**_api_settings(), "review_tokens": {"alice": "a-new-token-0123456789"}}
    ).api
    assert session_principal(rotated, cookie) is None, "a new token ends the sessions of the old one"
    assert principal_of(api, ALICE) == ("review", "alice") and principal_of(api, ADMIN) == ("admin", "admin")
