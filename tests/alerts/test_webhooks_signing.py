"""Standard Webhooks signing checked by the spec authors' own library, over real HTTP."""

from __future__ import annotations

import asyncio
import base64
import time

import httpx
import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from alerts.settings import WebhookSettings
from alerts.webhooks.receiver import Receiver
from alerts.webhooks.signing import Signer, as_spec_secret, new_secret
from tests.alerts.test_webhooks import dispatch_all, make_alert, settings
from tests.conftest import Stack

OLD = new_secret()
NEW = new_secret()


def refused(secret: str, body: bytes, headers: dict[str, str]) -> bool:
    try:
        Webhook(secret).verify(body, headers)
    except WebhookVerificationError:
        return True
    return False


def test_rotation_both_secrets_verify_during_the_overlap(stack: Stack) -> None:
    with Receiver(OLD) as old_rx, Receiver(NEW) as new_rx, Receiver(OLD) as left_behind:
        cfg = settings(
            {"name": "old-side", "url": old_rx.url, "secret": [NEW, OLD]},
            {"name": "new-side", "url": new_rx.url, "secret": [NEW, OLD]},
            # Rotation finished: OLD is retired, so a receiver still on it must refuse.
            {"name": "retired", "url": left_behind.url, "secret": NEW, "max_attempts": 1},
        )
        alerts = [make_alert(i) for i in range(3)]
        results, sink = asyncio.run(dispatch_all(stack, cfg, alerts))

    assert all(r["old-side"].status == r["new-side"].status == "delivered" for r in results)
    for rx in (old_rx, new_rx):
        assert rx.bad_signatures == 0
        assert sorted(rx.ids()) == sorted(a.alert_id for a in alerts)
        for d in rx.deliveries:
            assert len(d.headers["webhook-signature"].split(" ")) == 2
            assert d.headers["webhook-id"] == d.alert_id  # the alert id is the idempotency key
            for secret in (OLD, NEW):  # the library verifies with either secret on its own
                assert Webhook(secret).verify(d.body, d.headers)["alert_id"] == d.alert_id
            assert refused(new_secret(), d.body, d.headers)
    assert all(r["retired"].status == "dead" and "http 401" in r["retired"].reason for r in results)
    assert left_behind.bad_signatures == 3 and not left_behind.deliveries
    assert sorted(e for _, e, _ in sink.items) == ["retired"] * 3


def test_tampered_body_old_timestamp_and_old_scheme_are_refused_over_http() -> None:
    body = make_alert(1).encode()
    signer = Signer([NEW])
    with Receiver(NEW) as rx, httpx.Client() as client:

        def post(data: bytes, headers: dict[str, str]) -> int:
            return client.post(rx.url, content=data, headers=headers).status_code

        fresh = signer.headers("a1", body.decode())
        stale = signer.headers("a1", body.decode(), now=time.time() - 6 * 60)
        tampered = body.replace(b'"severity":"warning"', b'"severity":"info"')
        assert tampered != body
        assert post(body, fresh) == 200
        assert post(tampered, fresh) == 401
        assert refused(NEW, tampered, fresh)
        assert post(body, stale) == 401
        assert refused(NEW, body, stale)
        assert post(body, {**fresh, "webhook-signature": "v1=" + "0" * 64}) == 401  # pre-spec scheme
        assert post(body, {"Content-Type": "application/json"}) == 401  # unsigned
    assert rx.bad_signatures == 4 and len(rx.deliveries) == 1


def test_legacy_raw_secret_maps_to_its_whsec_form() -> None:
    """Old configs keep working; a spec library verifies with the `whsec_` form of the same key."""
    raw = "test-secret-123"
    assert as_spec_secret(raw) == "whsec_" + base64.b64encode(raw.encode()).decode()
    headers = Signer([raw]).headers("x", "{}")
    assert Webhook(as_spec_secret(raw)).verify("{}", headers) == {}
    assert Webhook(raw.encode()).verify("{}", headers) == {}


def test_secrets_are_secret_str_and_rotation_reads_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    hook = WebhookSettings(name="a", url="http://x/h", secret=[NEW, OLD])
    assert NEW not in repr(hook) and NEW not in str(hook.model_dump(mode="json"))
    assert [s.get_secret_value() for s in hook.secret_values()] == [NEW, OLD]
    env = WebhookSettings(name="b", url="http://x/h", secret_env="HOOK_ROTATING")
    monkeypatch.setenv("HOOK_ROTATING", f" {NEW}  {OLD} ")
    assert [s.get_secret_value() for s in env.secret_values()] == [NEW, OLD]
    assert env.secret_value() == NEW
    monkeypatch.setenv("HOOK_ROTATING", "whsec_not*base64")
    with pytest.raises(ValueError, match="secret #1: a `whsec_` secret must be base64") as err:
        env.secret_values()
    assert "not*base64" not in str(err.value)
    with pytest.raises(ValueError, match="must be base64"):
        WebhookSettings(name="c", url="http://x/h", secret=[NEW, "whsec_%%%"])
    with pytest.raises(ValueError, match="no secret given"):
        WebhookSettings(name="d", url="http://x/h", secret=[])
