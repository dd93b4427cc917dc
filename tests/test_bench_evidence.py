"""`sightline bench evidence`: its pure parts (which alerts count, latencies, missing and
duplicates, the evidence_ready body), and a short run of the real chain (infra)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import orjson

from schemas.alert import AlertRecord, TimeWindow, alert_id
from sightline.bench import evidence_stats as stats
from sightline.evidence.notify import EVENT, event_body
from sightline.evidence.record import EvidenceRecord, PartState
from streams.evidence_urls import EvidenceUrlSettings
from tests.conftest import Stack, write_config

NS = stats.NS
KEYS = ("alerts", "snapshot_p50_s", "snapshot_p99_s", "clip_p50_s", "clip_p99_s", "cpu_ms_per_clip_second",
        "missing", "duplicates")  # fmt: skip


def _alert(created_s: float, start_s: float | None = None, rule: str = "cell") -> AlertRecord:
    created, start = int(created_s * NS), int((created_s if start_s is None else start_s) * NS)
    return AlertRecord(
        alert_id=alert_id(rule, created, start), type="threshold", severity="info", camera_id="cam",
        rule=rule, window=TimeWindow(start_ns=start, end_ns=created), capture_ns=created,
        created_ns=created, summary="x",
    )  # fmt: skip


def _record(alert: AlertRecord, snapshot_s: float | None, clip_s: float | None) -> EvidenceRecord:
    record = EvidenceRecord.new(alert)
    for part, after in (("snapshot", snapshot_s), ("clip", clip_s)):
        if after is None:
            record.parts[part] = PartState(status="missing")
        else:
            stored = alert.created_ns + int(after * NS)
            record.parts[part] = PartState(status="stored", stored_ns=stored, duration_s=10.0)
    return record


def test_latency_missing_and_duplicates_over_the_alerts_of_the_span() -> None:
    before, late = _alert(5), _alert(30)  # created outside [10, 20): not measured
    a, b, c = _alert(10), _alert(12), _alert(14)
    twin = _alert(15, start_s=14)  # another id for c's window: two evidence objects of one alert
    twin = twin.model_copy(update={"window": c.window})
    never = _alert(16)  # no record at all
    records = {
        a.alert_id: _record(a, 1.0, 12.0),
        b.alert_id: _record(b, 3.0, None),  # clip missing: counted missing, snapshot still timed
        c.alert_id: _record(c, 2.0, 14.0),
        twin.alert_id: _record(twin, 2.0, 14.0),
        before.alert_id: _record(before, 1.0, 11.0),
    }
    seen = stats.StoreSeen()
    seen.saw(a.alert_id, "clip.mp4", 1)
    seen.saw(a.alert_id, "clip.mp4", 2)  # rendered twice
    seen.saw(before.alert_id, "clip.mp4", 3)
    seen.saw(before.alert_id, "clip.mp4", 4)  # outside the span: not counted
    alerts = [before, a, b, c, c, twin, never, late]  # c published twice: one alert
    out = stats.summarize(alerts, records, seen, 10 * NS, 20 * NS)
    assert out["alerts"] == 5
    assert out["missing"] == 2 and set(out["missing_ids"]) == {b.alert_id, never.alert_id}
    assert out["duplicates"] == 2  # the twin, and a's second render
    assert out["snapshot_p50_s"] == 2.0 and out["clip_p50_s"] == 14.0
    assert out["clip_p99_s"] is not None and 13.9 < out["clip_p99_s"] <= 14.0


def test_cpu_per_clip_second_counts_clips_stored_in_the_span() -> None:
    a, b = _alert(10), _alert(30)
    records = [_record(a, 1.0, 5.0), _record(b, 1.0, 5.0)]  # a's clip stored at 15 s, b's at 35 s
    assert stats.clip_seconds_stored(records, 10 * NS, 20 * NS) == 10.0
    assert stats.cpu_ms_per_clip_second(2.5, 10.0) == 250.0
    assert stats.cpu_ms_per_clip_second(2.5, 0.0) is None
    # The evidence process's own part: from the alert readable on Kafka (3 s late) to stored.
    arrived = {a.alert_id: a.created_ns + 3 * NS}
    by_id = {r.alert_id: r for r in records}
    assert stats.after_arrival(by_id, arrived, [a.alert_id, b.alert_id], "clip") == [2.0]


def test_evidence_ready_body_has_urls_only_for_stored_parts() -> None:
    alert = _alert(10)
    record = _record(alert, 1.0, None)
    urls = EvidenceUrlSettings(secret=["s" * 24], public_url="https://api.test")
    body = orjson.loads(event_body(record, urls))
    assert (body["type"], body["alert_id"], body["alert_type"]) == (EVENT, alert.alert_id, "threshold")
    ev = body["evidence"]
    assert ev["status"] == "partial" and ev["clip_url"] is None and ev["clip"]["status"] == "missing"
    assert ev["snapshot_url"].startswith(f"https://api.test/v1/alerts/{alert.alert_id}/snapshot.jpg?")
    assert orjson.loads(event_body(record, None))["evidence"]["snapshot_url"] is None


def test_bench_evidence_smoke(stack: Stack, own_registry: Path, tmp_path: Path) -> None:
    """A short run of the whole chain: every alert of the span has complete evidence, once, and
    one signed alert.evidence_ready with both URLs."""
    config = write_config(stack.config, tmp_path / "sightline.yaml")
    command = [sys.executable, "-m", "sightline.cli", "-c", str(config), "bench", "evidence", "--json",
               "--duration", "10", "--cooldown", "10", "--workdir", str(tmp_path / "bench")]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=540)
    assert done.stdout.strip(), f"no JSON line (rc={done.returncode}):\n{done.stderr[-4000:]}"
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(KEYS) <= set(result), result
    assert result["alerts"] > 0 and not result["findings"], result
    assert (result["missing"], result["duplicates"]) == (0, 0), result
    ready = result["evidence_ready"]
    assert ready["alerts"] == result["alerts"], result
    assert ready["repeated"] == ready["wrong_id"] == ready["without_urls"] == ready["bad_signatures"] == 0
    assert result["snapshot_p50_s"] <= result["clip_p50_s"] and result["cpu_ms_per_clip_second"] > 0
