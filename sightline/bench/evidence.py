"""`sightline bench evidence`: how soon each alert's snapshot and clip are stored, with the chain
running, and what the evidence process's CPU costs per second of clip.

The chain is `bench e2e`'s (`E2EChain`: half the cameras RTSP, half `vtest.avi` replayed at real
time, `sightline infer`, `sightline alerts run`, a receiver that verifies signatures) on fresh
topics of the local Kafka, plus `sightline evidence` with its own store in the work dir and
`alert.evidence_ready` asked for by the receiver. The rules are e2e's 3x3 grid of person counts,
with a cooldown per cell (`--cooldown`) that sets how often alerts come.

Measured over the alerts *created* during `--duration` s after a warm-up (the first alert, then
`pre_roll_s` + 20 s, so each measured clip's pre-roll frames exist): the chain keeps running
until each camera has alerted after the span and every alert of the span has its evidence
finished and its `alert.evidence_ready` delivered, so post-roll frames always come. Latency is the
evidence process's clock at the part stored (`stored_ns` in the record) minus the alert's
`created_ns`, which is an event time: the capture time of the frame that raised it, stamped by
the decoder on this machine (for an RTSP camera when the frame was decoded; for the file, replayed
at real time, its start time plus the stream time). So it spans capture -> detections -> alert ->
evidence, not only the evidence process. CPU is the evidence process's over the measured span,
divided by the seconds of clip it stored in that span.
"""

from __future__ import annotations

import os
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from alerts.webhooks.signing import ID_HEADER
from schemas.alert import AlertRecord
from schemas.errors import ContractError
from sightline.bench import e2e_stats
from sightline.bench import evidence_stats as stats
from sightline.bench.chaos import ChaosOptions, ModeRun
from sightline.bench.cleanup import Created, delete_created
from sightline.bench.e2e_chain import E2EChain, camera_rules
from sightline.config import SightlineConfig
from sightline.evidence.notify import EVENT, event_id
from sightline.evidence.record import EvidenceRecord, load_record
from sightline.evidence.store import LocalDirStore
from streams.devinfra import DevStack
from streams.kafka import consumer_config
from streams.topic_reader import partitions_of

Log = Callable[[str], None]
PARTS = ("snapshot.jpg", "clip.mp4")


@dataclass(frozen=True)
class EvidenceOptions:
    duration_s: float = 60.0  # alerts created in this span are measured
    cameras: int = 2  # half RTSP (rounded down), half the file at real time
    fps: float = 5.0
    cooldown_s: float = 10.0  # per grid cell: how often a cell may alert
    mode: str = "at-least-once"
    finish_timeout_s: float = 120.0  # after the span, for the last alerts' evidence
    warm_up_s: float = 20.0  # after the first alert (and pre_roll_s): the span starts then


class EvidenceChain(E2EChain):
    """e2e's chain with `sightline evidence` and `alert.evidence_ready` asked for."""

    def __init__(self, workdir: Path, base: SightlineConfig, dev: DevStack, options: EvidenceOptions) -> None:
        plan = e2e_stats.Plan(0.0, options.fps, options.cameras, options.cameras)  # no overload
        super().__init__(workdir, base, dev, options.mode, plan)
        self.tag = f"evb-{uuid.uuid4().hex[:6]}"
        self.config = self._sightline_config()
        self.cameras = plan.cameras(self.tag)
        self.file_camera = next((c.id for c in self.cameras if not c.live), "")
        self.cooldown_s = options.cooldown_s
        self.commands["inference"] = ("infer", "--worker-id", f"{self.tag}-1", "--delivery", options.mode)
        self.commands["evidence"] = ("evidence", "--metrics-port", "0")
        self.store = LocalDirStore(workdir / "evidence")

    def rules(self) -> dict[str, Any]:
        cameras = [camera_rules(c.id) for c in self.cameras]
        for camera in cameras:
            for cell in camera["thresholds"]:
                cell["cooldown_s"] = self.cooldown_s
        return {"version": 1, "cameras": cameras}

    def _config(self) -> dict[str, Any]:
        data = super()._config()
        data["evidence"].update(dir=str(self.store.root), group_id=f"{self.tag}-evidence")
        data["evidence"]["urls"] = {"secret_env": "SIGHTLINE_DEMO_EVIDENCE_SECRET",
                                    "public_url": "http://127.0.0.1:8080"}  # fmt: skip
        data["alerts"]["webhooks"][0]["evidence_ready"] = True
        data["metrics"]["evidence_port"] = 0
        return data

    def start(self, with_api: bool = False) -> None:
        super().start(with_api)
        self.spawn("evidence")


class Watch:
    """What `ModeRun.tick` polls: the alerts topic (read_committed) and the evidence store."""

    def __init__(self, config: SightlineConfig, store: LocalDirStore) -> None:
        self.consumer = Consumer(
            {**consumer_config(config.kafka, f"evb-tail-{uuid.uuid4().hex}"), "log_level": 0}
        )
        topic = config.topics.alerts.name
        self.consumer.assign(
            [TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions_of(self.consumer, topic)]
        )
        self.store = store
        self.alerts: list[AlertRecord] = []
        self.arrived: dict[str, int] = {}  # alert id -> when the tail first saw it
        self.seen = stats.StoreSeen()
        self._scanned = 0.0

    def poll(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            msg = self.consumer.poll(min(left, 0.25))
            if msg is not None and msg.error() is None:
                try:
                    alert = AlertRecord.decode(msg.value() or b"")
                except ContractError:
                    continue
                self.alerts.append(alert)
                self.arrived.setdefault(alert.alert_id, time.time_ns())
            if time.monotonic() - self._scanned > 0.5:
                self.scan()

    def scan(self) -> None:
        """The inode of every stored part: a part rendered again is a new file renamed into place."""
        self._scanned = time.monotonic()
        for alert_id in self.store.alert_ids():
            for name in PARTS:
                try:
                    self.seen.saw(alert_id, name, os.stat(self.store.root / alert_id / name).st_ino)
                except FileNotFoundError:
                    continue

    def records(self) -> dict[str, EvidenceRecord | None]:
        return {a.alert_id: load_record(self.store, a.alert_id) for a in self.alerts}

    def close(self) -> None:
        self.consumer.close()


class EvidenceRun(ModeRun):
    def __init__(self, chain: EvidenceChain, options: EvidenceOptions, log: Log) -> None:
        super().__init__(chain, ChaosOptions(faults=[], modes=[chain.mode]), random.Random(0), log)
        self.chain: EvidenceChain = chain
        self.bench = options

    def finished(self, watch: Watch, start_ns: int, end_ns: int) -> bool:
        """An alert created after the span has come, from each camera that alerted in it (its
        alerts of the span are all in: one camera's alerts come in order), and each alert of the
        span has a finished record and its evidence_ready event."""
        span = [a for a in watch.alerts if start_ns <= a.created_ns < end_ns]
        after = {a.camera_id for a in watch.alerts if a.created_ns >= end_ns}
        if not after or not {a.camera_id for a in span} <= after:
            return False
        ids = {a.alert_id for a in span}
        records = watch.records()
        ready = {d.alert_id for d in self.chain.deliveries() if d.type == EVENT}
        return all((r := records.get(i)) is not None and r.status != "pending" for i in ids) and ids <= ready

    def run(self) -> dict[str, Any]:  # type: ignore[override]
        chain, pre_roll = self.chain, self.chain.config.evidence.pre_roll_s
        watch: Watch | None = None
        try:
            self.log(f"starting the chain with the evidence process (logs: {chain.workdir})")
            chain.start()
            watch = self.probe = Watch(chain.config, chain.store)  # type: ignore[assignment]
            if not self.wait(lambda: bool(watch.alerts), 240):
                raise RuntimeError(f"no alert within 240 s; see {chain.workdir}")
            # A measured clip starts pre_roll_s before its alert's window, which (a threshold's
            # episode) may have begun well before the alert: wait until that is after the start.
            self.tick(pre_roll + self.bench.warm_up_s)
            pid = chain.children["evidence"].pid
            cpu0, start_ns = e2e_stats.process_cpu_s(pid) or 0.0, time.time_ns()
            self.log(f"measuring the alerts created in the next {self.bench.duration_s:.0f} s")
            self.tick(self.bench.duration_s)
            cpu1, end_ns = e2e_stats.process_cpu_s(pid), time.time_ns()
            if chain.children["evidence"].pid != pid or cpu1 is None:
                chain.findings.append("the evidence process restarted during the measurement")
            self.log("waiting for the evidence of the alerts created in the span")
            if not self.wait(lambda: self.finished(watch, start_ns, end_ns), self.bench.finish_timeout_s):
                chain.findings.append(
                    f"evidence not finished {self.bench.finish_timeout_s:.0f} s after the span"
                )
            self.tick(2)  # a second render or a repeated event would show now
            return self.report(watch, start_ns, end_ns, (cpu1 or 0.0) - cpu0)
        finally:
            if watch is not None:
                watch.close()
            chain.shutdown()
            for problem in delete_created(chain.config.kafka, Created(prefixes={chain.tag})):
                self.log(f"cleanup: {problem}")

    def report(self, watch: Watch, start_ns: int, end_ns: int, cpu_s: float) -> dict[str, Any]:
        records = watch.records()
        result = stats.summarize(watch.alerts, records, watch.seen, start_ns, end_ns)
        measured = {a.alert_id: a for a in watch.alerts if start_ns <= a.created_ns < end_ns}
        clip_s = stats.clip_seconds_stored([r for r in records.values() if r is not None], start_ns, end_ns)
        events = [d for d in self.chain.deliveries() if d.type == EVENT and d.alert_id in measured]
        per_alert = Counter(d.alert_id for d in events)
        arrived = [(watch.arrived[i] - a.created_ns) / stats.NS for i, a in measured.items()]
        cameras = Counter(a.camera_id for a in measured.values())
        after = {
            part: stats.after_arrival(records, watch.arrived, measured, part) for part in ("snapshot", "clip")
        }
        head = ("alerts", "snapshot_p50_s", "snapshot_p99_s", "clip_p50_s", "clip_p99_s")
        return {
            **{k: result[k] for k in head},
            "cpu_ms_per_clip_second": stats.cpu_ms_per_clip_second(cpu_s, clip_s),
            "missing": result["missing"],
            "duplicates": result["duplicates"],
            "missing_ids": result["missing_ids"],
            "alert_p50_s": stats.percentile(arrived, 50),  # created_ns -> the alert readable on Kafka
            "alert_p99_s": stats.percentile(arrived, 99),
            # The evidence process's own part: from the alert readable on Kafka to the part stored.
            "snapshot_after_alert_p50_s": stats.percentile(after["snapshot"], 50),
            "snapshot_after_alert_p99_s": stats.percentile(after["snapshot"], 99),
            "clip_after_alert_p50_s": stats.percentile(after["clip"], 50),
            "clip_after_alert_p99_s": stats.percentile(after["clip"], 99),
            "alerts_by_camera": dict(sorted(cameras.items())),
            "cpu_s": round(cpu_s, 1),
            "clip_s": round(clip_s, 1),
            "evidence_ready": {
                "alerts": len(per_alert),
                "repeated": sum(n - 1 for n in per_alert.values()),
                "wrong_id": sum(d.headers.get(ID_HEADER) != event_id(d.alert_id) for d in events),
                "without_urls": sum(not urls_in(d.body) for d in events),
                "bad_signatures": sum(r.bad_signatures for r in self.chain.receivers),
            },
            "duration_s": round((end_ns - start_ns) / stats.NS, 1),
            "findings": list(self.chain.findings),
            "workdir": str(self.chain.workdir),
        }


def run_evidence(
    config: SightlineConfig, options: EvidenceOptions, workdir: Path, log: Log
) -> dict[str, Any]:
    dev = DevStack(config.dev)
    dev.up()
    chain = EvidenceChain(workdir, config, dev, options)
    result = EvidenceRun(chain, options, log).run()
    post_roll = config.evidence.post_roll_s
    result["targets"] = {"snapshot_p99_s": 5.0, "clip_p99_s": post_roll + 10.0, "missing": 0, "duplicates": 0}
    return result


def urls_in(body: bytes) -> bool:
    """The event carries both signed URLs (every measured alert's evidence is complete)."""
    evidence = orjson.loads(body).get("evidence", {})
    return all("sig=" in (evidence.get(f"{part}_url") or "") for part in ("snapshot", "clip"))
