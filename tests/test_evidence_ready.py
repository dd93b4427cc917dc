"""`alert.evidence_ready` from `sightline evidence` against the real broker, Redis and a receiver
that verifies Standard Webhooks signatures: sent once per alert to the endpoints that ask for it,
with the signed URLs, a stable webhook-id, retried through failures, never sent twice."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import orjson

from alerts.settings import WebhookSettings
from alerts.webhooks.receiver import Receiver, Reply
from alerts.webhooks.signing import ID_HEADER, new_secret
from sightline.evidence.notify import EVENT, event_id
from sightline.evidence.service import EvidenceService
from streams.evidence_urls import EvidenceUrlSettings, verify
from tests.conftest import Stack
from tests.test_evidence import NS, _config, _defect, _publish, _vtest

URL_SECRET = "evidence-url-secret-0123456789"


def test_evidence_ready_is_sent_once_signed_with_the_urls(
    stack: Stack, tmp_path: Path, vtest_path: Path
) -> None:
    config = _config(stack, tmp_path)
    config.evidence.urls = EvidenceUrlSettings(secret=[URL_SECRET], public_url="http://sightline.test")
    secret = new_secret()
    flaky, silent = Receiver(secret).start(), Receiver(secret).start()
    flaky.behaviour = lambda attempt, _id: Reply(503 if attempt <= 2 else 200)  # two failures first
    config.alerts.redis_prefix = f"sightline:t-{uuid.uuid4().hex[:8]}"
    config.alerts.webhooks = [
        WebhookSettings(name="ops", url=flaky.url, secret=secret, evidence_ready=True, backoff_initial_s=0.1),
        WebhookSettings(name="quiet", url=silent.url, secret=secret),  # did not ask for it
    ]
    try:
        captures, _ = _publish(config, _vtest(vtest_path, 30), time.time_ns() - 60 * NS, claimed={12})
        alert = _defect(config, captures, first=10, last=15, best=12)
        stats = EvidenceService(config, threading.Event()).run(max_idle_s=2)
        assert stats.complete == 1, stats

        [got] = flaky.deliveries
        assert flaky.requests == 3 and flaky.bad_signatures == 0  # verified by the spec's library
        assert got.headers[ID_HEADER] == event_id(alert.alert_id) != alert.alert_id
        body = orjson.loads(got.body)
        assert (body["type"], body["alert_id"], body["camera_id"]) == (EVENT, alert.alert_id, "cam")
        assert body["evidence"]["status"] == "complete"
        for part, name in (("snapshot", "snapshot.jpg"), ("clip", "clip.mp4")):
            url = urlsplit(body["evidence"][f"{part}_url"])
            assert url.netloc == "sightline.test" and url.path == f"/v1/alerts/{alert.alert_id}/{name}"
            query = dict(kv.split("=") for kv in url.query.split("&"))
            assert verify(url.path, query["expires"], query["sig"], [URL_SECRET]) is None
        assert silent.requests == 0

        # The alert read again (a restart, a replay): finished evidence, the event not sent twice.
        config.evidence.group_id += "-again"
        again = EvidenceService(config, threading.Event()).run(max_idle_s=2)
        assert (again.alerts, again.already) == (0, 1)
        assert len(flaky.deliveries) == 1 and flaky.requests == 3
    finally:
        flaky.stop()
        silent.stop()
