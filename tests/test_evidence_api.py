"""Evidence URLs: signed and expiring, 503 with Retry-After until the evidence exists, never 404."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import httpx

from schemas.alert import AlertRecord, TimeWindow, alert_id
from sightline.api import create_app
from sightline.api.server import ServerThread
from sightline.config import SightlineConfig
from sightline.evidence.record import EvidenceRecord, Gap, PartState, part_key, record_key
from sightline.evidence.store import LocalDirStore
from streams.evidence_urls import EvidenceUrlSettings, evidence_urls, sign, verify

OLD, NEW = "old-secret-0123456789", "new-secret-0123456789"
READ = "read-token-for-evidence"


def _alert(n: int) -> AlertRecord:
    return AlertRecord(
        alert_id=alert_id("test", n), type="defect", severity="warning", camera_id="cam", rule="r",
        window=TimeWindow(start_ns=1, end_ns=2), capture_ns=2, created_ns=2, summary=f"alert {n}",
    )  # fmt: skip


@contextlib.contextmanager
def _api(tmp_path: Path, secrets: list[str]) -> Iterator[httpx.Client]:
    config = SightlineConfig(
        api={"read_token": READ, "public_reads": False},
        evidence={"dir": str(tmp_path), "urls": {"secret": secrets, "public_url": "http://sightline.test"}},
    )
    app = create_app(config, tail=False, load_model=False)
    with ServerThread(app) as server, httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


def _local(url: str) -> str:
    return url.removeprefix("http://sightline.test")


def test_signed_urls_serve_the_evidence_and_refuse_bad_signatures(tmp_path: Path) -> None:
    store = LocalDirStore(tmp_path)
    done, pending, gone = _alert(1), _alert(2), _alert(3)
    record = EvidenceRecord.new(done)
    jpeg, mp4 = b"\xff\xd8\xff snapshot", b"\x00\x00\x00\x20ftypisom clip bytes"
    store.put(part_key(done.alert_id, "snapshot"), jpeg)
    store.put(part_key(done.alert_id, "clip"), mp4)
    for part in ("snapshot", "clip"):
        record.parts[part] = PartState(status="stored", key=part_key(done.alert_id, part))  # type: ignore[index]
    store.put(record_key(done.alert_id), record.model_dump_json().encode())
    missing = EvidenceRecord.new(gone)
    reason = "frame record expired from Kafka: t[0] keeps offsets from 9 on"
    missing.parts["clip"] = PartState(status="missing", missing=[Gap(cause="kafka_expired", reason=reason)])
    store.put(record_key(gone.alert_id), missing.model_dump_json().encode())

    with _api(tmp_path, [NEW, OLD]) as client:
        info = client.get(f"/v1/alerts/{done.alert_id}", headers={"Authorization": f"Bearer {READ}"})
        assert info.status_code == 200, info.text
        body = info.json()
        assert body["alert"]["alert_id"] == done.alert_id and body["evidence"]["status"] == "complete"
        urls = body["urls"]
        assert urls["snapshot"].startswith(f"http://sightline.test/v1/alerts/{done.alert_id}/snapshot.jpg?")
        assert client.get(f"/v1/alerts/{done.alert_id}").status_code == 401, "the record needs the read token"

        good = client.get(_local(urls["snapshot"]))
        assert (
            good.status_code == 200 and good.content == jpeg and good.headers["content-type"] == "image/jpeg"
        )
        clip = client.get(_local(urls["clip"]), headers={"Range": "bytes=4-11"})
        assert clip.status_code == 206 and clip.content == mp4[4:12], "a <video> can seek"

        # Signed with the old secret during a rotation: still good. Expired, tampered, wrong path: 403.
        path = f"/v1/alerts/{done.alert_id}/snapshot.jpg"
        assert client.get(sign(path, [OLD], 60)).status_code == 200
        expired = client.get(sign(path, [NEW], -10))
        assert expired.status_code == 403 and "expired" in expired.json()["detail"]
        tampered = _local(urls["snapshot"]).replace("expires=", "expires=9")
        assert client.get(tampered).status_code == 403
        assert client.get(sign(path, ["another-secret-0123456789"], 60)).status_code == 403
        other_path = _local(urls["snapshot"]).replace("snapshot.jpg", "clip.mp4")
        assert client.get(other_path).status_code == 403, "a snapshot's signature does not open the clip"
        assert client.get(path).status_code == 401, "no signature: the read token is needed"

        # Not rendered yet (no record at all, or pending): 503 with Retry-After, never 404.
        urls = evidence_urls(EvidenceUrlSettings(secret=[NEW]), pending.alert_id, "http://x") or {}
        for part_url in urls.values():
            waiting = client.get(part_url.removeprefix("http://x"))
            assert waiting.status_code == 503 and int(waiting.headers["Retry-After"]) > 0
        store.put(record_key(pending.alert_id), EvidenceRecord.new(pending).model_dump_json().encode())
        waiting = client.get(sign(f"/v1/alerts/{pending.alert_id}/clip.mp4", [NEW], 60))
        assert waiting.status_code == 503 and waiting.headers["Retry-After"]

        # Frames expired before the clip could be made: 410 and the reason, from the record.
        lost = client.get(sign(f"/v1/alerts/{gone.alert_id}/clip.mp4", [NEW], 60))
        assert lost.status_code == 410 and reason in lost.json()["detail"]


def test_verify_names_what_is_wrong() -> None:
    path = "/v1/alerts/ab/clip.mp4"
    query = sign(path, [NEW], 100, now=1000).split("?", 1)[1]
    expires, sig = (kv.split("=", 1)[1] for kv in query.split("&"))
    assert verify(path, expires, sig, [NEW], now=1050) is None
    assert verify(path, expires, sig, [OLD, NEW], now=1050) is None
    assert "expired" in (verify(path, expires, sig, [NEW], now=1101) or "")
    assert "does not match" in (
        verify(path, expires, sig[:-1] + ("1" if sig.endswith("0") else "0"), [NEW], now=1050) or ""
    )
    assert "not configured" in (verify(path, expires, sig, [], now=1050) or "")
    assert "malformed" in (verify(path, "12ab", sig, [NEW], now=1050) or "")
