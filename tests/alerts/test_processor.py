"""The faust app end to end: real Kafka, Redis, processor subprocess and HTTP receiver."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alerts.pos import PosEvent
from alerts.replay_rules import evaluate
from alerts.settings import RulesSettings
from alerts.synthetic import Walker, box_at, record, scene
from alerts.webhooks.receiver import Receiver
from schemas.alert import AlertRecord
from tests.alerts.helpers import (
    SECRET,
    Processor,
    alerts_config,
    committed,
    produce,
    produce_records,
    wait_for,
    write_config,
)
from tests.conftest import Stack

T0 = 1_700_000_000_000_000_000
S = 1_000_000_000

RULES = {
    "cameras": [
        {
            "camera": "checkout-1",
            "lateness_s": 1,
            "lanes": [
                {
                    "name": "lane-1",
                    "line": {"start": [0, 288], "end": [768, 288]},
                    "classes": ["person"],
                    "window_s": 5,
                    "pos_register": "reg-1",
                    "scan_gap": {"tolerance_s": 2, "grace_s": 1},
                }
            ],
        },
        {
            "camera": "factory-1",
            "lateness_s": 0,
            "defects": [{"name": "scratch", "classes": ["scratch"], "k": 3, "n": 5, "min_confidence": 0.5}],
            "anomalies": [
                {"name": "crowd", "classes": ["person"], "bucket_s": 1, "warmup_buckets": 5, "min_std": 0.5}
            ],
        },
    ]
}


def _all_committed(config, group: str, topic: str) -> bool:
    done, ends = committed(config, group, topic)
    return all(done[p] == end for p, end in ends.items() if end > 0)


def checkout_records() -> list:
    walkers = [
        Walker(1, "person", (100, 150), (100, 450), 0, 20),
        Walker(2, "person", (300, 150), (300, 450), 40, 20),
    ]
    return list(scene("checkout-1", walkers, 150, start_ns=T0))


def factory_records() -> list:
    out = []
    counts = [2] * 10 + [12] + [2] * 4
    seq = 0
    for b, n in enumerate(counts):
        for k in range(5):
            boxes = [(box_at(50 + 40 * j, 300), 0.9, "person", 100 + j) for j in range(n)]
            if b == 3:
                boxes.append((box_at(600, 300), 0.8, "scratch", 7))  # 5 frames of one scratch: 1 alert
            out.append(record("factory-1", seq, T0 + b * S + k * S // 5, boxes))
            seq += 1
    return out


@pytest.mark.timeout(180)
def test_rules_to_webhooks_end_to_end(stack: Stack, tmp_path: Path) -> None:
    base = stack.fresh_config("alerts-e2e", partitions=2)
    with Receiver(SECRET) as rx:
        config = alerts_config(base, RULES, [{"name": "ops", "url": rx.url, "backoff_initial_s": 0.05}])
        path = write_config(config, tmp_path / "sightline.yaml")
        # Item 1 crosses at ~1 s and is scanned; item 2 crosses at ~5 s and is not.
        scan = PosEvent(type="scan", register="reg-1", at_ns=T0 + 1_200_000_000, event_id="scan-1")
        produce(
            config, config.topics.pos_events.name, [("reg-1", scan.model_dump_json(by_alias=True).encode())]
        )
        produce_records(config, checkout_records() + factory_records())
        proc = Processor(path, tmp_path / "processor.log").start()
        try:
            expected = {"tally", "scan_gap", "defect", "spike"}
            wait_for(
                lambda: expected <= {json.loads(d.body)["type"] for d in rx.deliveries}, 90, "alerts", proc
            )
        finally:
            proc.stop()
        got = [AlertRecord.decode(d.body) for d in rx.deliveries]
        assert all(d.verified for d in rx.deliveries)
        by_type: dict[str, list[AlertRecord]] = {}
        for a in got:
            by_type.setdefault(a.type, []).append(a)
        assert [a.evidence["track_id"] for a in by_type["scan_gap"]] == [2]
        assert len(by_type["defect"]) == 1 and by_type["defect"][0].evidence["track_id"] == 7
        assert [(a.window.start_ns - T0) // S for a in by_type["spike"]] == [10]
        tallies = sorted((a.window.start_ns, a.evidence["counts"]["person"]) for a in by_type["tally"])
        assert sum(n for _, n in tallies) == 2
        # What the live app raised is what replay-rules computes offline from the same records.
        offline = evaluate(
            RulesSettings(**RULES), checkout_records() + factory_records(), [scan], flush=False
        )
        assert {a.alert_id for a in offline} == {a.alert_id for a in got}
        assert rx.ids() == {a.alert_id: 1 for a in offline}


def crash_scenario() -> tuple[dict, list]:
    """4 cameras, 40 s of event time: walkers crossing a line (2 s windows) and scratches."""
    import random

    rules = {"cameras": []}
    records = []
    for c in range(4):
        cam = f"cam-{c}"
        rules["cameras"].append(
            {
                "camera": cam,
                "lateness_s": 0.5,
                "lanes": [{"name": "door", "line": {"start": [0, 288], "end": [768, 288]}, "window_s": 2}],
                "defects": [{"name": "scratch", "classes": ["scratch"], "k": 2, "n": 3}],
            }
        )
        rng = random.Random(c)
        walkers = [
            Walker(
                i,
                "person",
                (x := rng.uniform(50, 700), 100),
                (x, 500),
                rng.randrange(0, 380),
                rng.randrange(8, 25),
            )
            for i in range(1, 60)
        ]
        walkers += [Walker(1000 + i, "scratch", (600, 300), (610, 300), 20 * i + c, 4) for i in range(18)]
        records += list(scene(cam, walkers, 400, start_ns=T0))
    records.sort(key=lambda r: (r.capture_ns, r.camera_id))
    return rules, records


@pytest.mark.timeout(240)
def test_kill_9_mid_stream_loses_nothing_and_duplicates_nothing(stack: Stack, tmp_path: Path) -> None:
    import threading
    import time

    from alerts.webhooks.receiver import Reply
    from streams.kafka import make_producer

    rules, records = crash_scenario()
    expected = evaluate(RulesSettings(**rules), records, flush=False)
    assert len(expected) > 100
    base = stack.fresh_config("alerts-crash", partitions=3)
    with Receiver(SECRET) as rx:
        hook = {
            "name": "ops",
            "url": rx.url,
            "backoff_initial_s": 0.05,
            "backoff_max_s": 0.5,
            "max_attempts": 1000,
            "breaker_reset_s": 0.3,
        }
        config = alerts_config(base, rules, [hook])
        path = write_config(config, tmp_path / "sightline.yaml")
        proc = Processor(path, tmp_path / "processor.log").start()

        def paced() -> None:  # ~150 records/s, so the crash lands mid-stream
            producer = make_producer(config.kafka, "test-paced", linger_ms=1)
            for i in range(0, len(records), 15):
                produce_records(config, records[i : i + 15], producer)
                time.sleep(0.1)

        producer = threading.Thread(target=paced)
        producer.start()
        try:
            wait_for(lambda: len(rx.deliveries) >= 10, 90, "first deliveries", proc)
            # The receiver starts failing; the processor dies while alerts are being retried.
            rx.behaviour = lambda n, _id: Reply(503)
            time.sleep(0.5)
            proc.kill9()
            before = len(rx.deliveries)
            proc = Processor(path, tmp_path / "processor.log").start()
            time.sleep(2.0)
            rx.behaviour = lambda n, _id: Reply(200)
            producer.join()
            want = {a.alert_id for a in expected}
            wait_for(lambda: want <= set(rx.ids()), 120, "every expected alert", proc)
            time.sleep(2.0)  # anything extra (a duplicate) would show up now
        finally:
            producer.join()
            proc.stop()
        assert 0 < before < len(expected), "the crash should happen mid-stream"
        assert rx.ids() == {a.alert_id: 1 for a in expected}, "lost or duplicated alerts"
        live = {a.alert_id: a for a in (AlertRecord.decode(d.body) for d in rx.deliveries)}
        for alert in expected:  # tallies and evidence unchanged by the restart (no double counting)
            assert live[alert.alert_id].evidence == alert.evidence
