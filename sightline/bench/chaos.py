"""`sightline bench chaos`: the whole chain as processes, with one fault at a time injected.

The chain is the demo's (`chaos_chain.Chain`), on a private Kafka (one broker, or a cluster of
three) and Redis, each behind Toxiproxy so that network faults reach every client. Each fault
(`chaos_faults`) is applied after a seeded random stretch of normal running. Afterwards the
frames and the committed detections are read back and checked (every frame has its detections
record; `seq` neither skips nor repeats), and the alerts the receiver got are compared with what
`sightline alerts test-rules` computes offline from the committed detections
(`chaos_audit`): anything missing is lost, anything extra or repeated is a duplicate. A stage
that exits on its own is restarted and recorded, never hidden.
"""

from __future__ import annotations

import json
import os
import random
import signal
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sightline.bench.chaos_audit import Probe, detections, frame_rows, read_topic, replay_alerts
from sightline.bench.chaos_chain import CLIP, MODES, Chain, camera_rules
from sightline.bench.chaos_faults import DETAILS, FAULTS, Fault, StageKill, make_faults
from sightline.bench.cleanup import Created, delete_created
from sightline.config import DevSettings, SightlineConfig
from streams.devinfra import DevStack, free_port

# What other benchmarks and the tests take from here.
__all__ = ["CLIP", "DETAILS", "MODES", "ChaosOptions", "Chain", "Fault", "ModeRun", "StageKill", "Window",
           "camera_rules", "read_topic", "run_chaos"]  # fmt: skip

Log = Callable[[str], None]
SETTLE_TIMEOUT_S = 900.0  # a fault running in steps (a rolling restart of three brokers) ends by then


@dataclass
class Window:
    """One fault's stretch of the run: from the end of the previous one to the end of its own."""

    fault: Fault
    start_ns: int
    healed_ns: int = 0
    injected_ns: int = 0
    recovered_ns: int = 0  # every camera had new detections (0: not within the timeout)
    findings: list[str] = field(default_factory=list)


@dataclass
class ChaosOptions:
    faults: list[str] = field(default_factory=lambda: list(FAULTS))
    modes: list[str] = field(default_factory=lambda: list(MODES))
    duration_s: float = 30.0  # normal running before each fault: a seeded 50-100% of this
    outage_s: float | None = None
    recovery_timeout_s: float = 90.0
    brokers: int = 1  # 3: a KRaft cluster, replication 3, min.insync.replicas 2
    seed: int = 0


class ModeRun:
    """One delivery mode: start the chain, apply the faults one by one, drain, audit."""

    def __init__(self, chain: Chain, options: ChaosOptions, rng: random.Random, log: Log) -> None:
        self.chain, self.options, self.rng = chain, options, rng
        self.log = lambda m: log(f"[{chain.mode}] {m}")
        self.probe: Probe | None = None

    @property
    def cameras(self) -> list[str]:
        return [self.chain.file_camera] + ([self.chain.live_camera] if self.chain.live else [])

    def back_since(self, t_ns: int) -> bool:
        assert self.probe is not None
        return self.probe.back_since(t_ns, self.cameras)

    def tick(self, seconds: float) -> None:
        """Wait `seconds` while restarting stages that exit and following the topics."""
        assert self.probe is not None
        end = time.monotonic() + seconds
        while True:
            self.chain.supervise()
            self.probe.poll(max(0.0, min(0.5, end - time.monotonic())))
            if time.monotonic() >= end:
                return

    def wait(self, done: Callable[[], bool], timeout: float, step: float = 0.5) -> bool:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() >= deadline:
                return False
            self.tick(step)
        return True

    def run(self, faults: list[Fault]) -> list[dict[str, Any]]:
        chain = self.chain
        try:
            self.log(f"starting the chain (logs: {chain.workdir})")
            chain.start()
            self.probe = Probe(chain.config)
            if not self.wait(lambda: self.back_since(0), 180):
                raise RuntimeError(f"no detections from every camera within 180 s; see {chain.workdir}/*.log")
            windows = [self.fault(f) for f in faults]
            self.drain()
            return self.audit(windows)
        finally:
            if self.probe is not None:
                self.probe.close()
            chain.shutdown()
            for receiver in chain.receivers[:-1]:
                receiver.stop()
            # The mode's topics and groups (its inference group, faust's group and topics all
            # start with the tag): the next mode, on the same private broker, starts clean.
            for problem in delete_created(chain.config.kafka, Created(prefixes={chain.tag})):
                self.log(f"cleanup: {problem}")

    def fault(self, fault: Fault) -> Window:
        chain, window = self.chain, Window(fault, time.time_ns())
        chain.findings = window.findings
        self.tick(self.rng.uniform(0.5, 1.0) * self.options.duration_s)
        self.log(f"{fault.name}: inject (outage {fault.outage_s:.0f} s)")
        chain.held.update(fault.holds)
        window.injected_ns = time.time_ns()
        fault.inject(chain)
        self.tick(fault.outage_s)
        self.wait(fault.settled, SETTLE_TIMEOUT_S)
        fault.heal(chain)
        chain.held.difference_update(fault.holds)
        window.healed_ns = time.time_ns()
        self.log(f"{fault.name}: healed; waiting for new frames with detections from every camera")
        if self.wait(lambda: self.back_since(window.healed_ns), self.options.recovery_timeout_s):
            window.recovered_ns = time.time_ns()
        else:
            self.restart_stuck(window)
        window.findings[:] = [f"{m} x{n}" if n > 1 else m for m, n in Counter(window.findings).items()]
        for finding in window.findings:
            self.log(f"{fault.name}: {finding}")
        return window

    def restart_stuck(self, window: Window) -> None:
        """Alive but stuck: do what a liveness probe would (kill -9, restart), and record it.
        A camera without new frames points at its decoder; frames without detections at the
        workers."""
        assert self.probe is not None
        chain, timeout = self.chain, self.options.recovery_timeout_s
        decoder = {chain.file_camera: "decoder", chain.live_camera: "live-decoder"}
        silent = [c for c in self.cameras if self.probe.newest_frame.get(c, 0) <= window.healed_ns]
        stuck = [decoder[c] for c in silent] or [n for n in chain.children if n.startswith("inference")]
        if not silent and self.probe.last_detections_ns > window.healed_ns:
            # Detections kept coming, for frames of the backlog: a worker slower than the cameras,
            # not a hung one (its stack dump then shows busy stages). Restarted all the same.
            what = f"detections flowing but no frame captured after healing detected within {timeout:.0f} s"
        else:
            what = f"no new detections {timeout:.0f} s after healing"
        window.findings.append(f"{what}; restarted {', '.join(stuck)}")
        chain.held.update(stuck)
        for name in stuck:
            chain.kill(name, signal.SIGCONT)
            chain.kill(name, signal.SIGABRT)  # PYTHONFAULTHANDLER: its threads' stacks go to its log
        self.wait(lambda: all(chain.children[n].poll() is not None for n in stuck), 5)
        for name in stuck:
            chain.kill(name)
            chain.spawn(name)
        chain.held.difference_update(stuck)

    def drain(self) -> None:
        """Stop the decoders cleanly, then give the worker and the processors time to finish."""
        chain, cfg = self.chain, self.chain.config
        decoders = [n for n in ("decoder", "live-decoder") if n in chain.children]
        chain.held.update(decoders)
        for name in decoders:
            chain.kill(name, signal.SIGTERM)
        self.wait(lambda: all(chain.children[n].poll() is not None for n in decoders), 30)
        self.log("decoders stopped; waiting for the detections of every frame")

        def covered() -> bool:
            frames = {(r.partition, r.offset) for r in frame_rows(read_topic(cfg, cfg.topics.frames.name))}
            dets = detections(read_topic(cfg, cfg.topics.detections.name))
            return frames <= {(d.frame.partition, d.frame.offset) for d, _, _ in dets}

        self.wait(covered, 120, step=3)

    def audit(self, windows: list[Window]) -> list[dict[str, Any]]:
        chain, cfg = self.chain, self.chain.config
        frames = frame_rows(read_topic(cfg, cfg.topics.frames.name))
        dets = detections(read_topic(cfg, cfg.topics.detections.name))
        expected = replay_alerts(chain, dets)
        ids = {a["alert_id"] for a in expected}
        self.log(f"{len(frames)} frames, {len(dets)} detections, {len(ids)} alerts expected")
        deadline = time.monotonic() + 120
        while not ids <= {d.alert_id for d in chain.deliveries()} and time.monotonic() < deadline:
            time.sleep(1)
        time.sleep(2)  # a duplicate would show up now
        delivered = [json.loads(d.body) for d in chain.deliveries()]
        for name, alerts in (("expected", expected), ("delivered", delivered)):  # for a closer look
            (chain.workdir / f"alerts-{name}.jsonl").write_text("".join(json.dumps(a) + "\n" for a in alerts))

        starts = [w.start_ns for w in windows[1:]]
        frame_ns = {(f.partition, f.offset): f.ts_ms * 1_000_000 for f in frames}
        by_capture = {(f.camera, f.capture_ns): f.ts_ms * 1_000_000 for f in frames}

        def window_of(ts_ns: int) -> int:
            return sum(1 for s in starts if ts_ns >= s)

        def alert_window(alert: dict[str, Any]) -> int:
            return window_of(by_capture.get((alert["camera_id"], alert["capture_ns"]), alert["capture_ns"]))

        per_frame = Counter((d.frame.partition, d.frame.offset) for d, _, _ in dets)
        rows: list[Counter[str]] = [Counter() for _ in windows]
        last_seq: dict[str, int] = {}
        for m in read_topic(cfg, cfg.topics.dead_letter.name):  # why a frame may have no detections
            rows[window_of(m.timestamp()[1] * 1_000_000)]["dead_letters"] += 1
        for f in frames:
            row = rows[window_of(f.ts_ms * 1_000_000)]
            row["frames"] += 1
            n = per_frame[(f.partition, f.offset)]
            row["frames_without_detections"] += n == 0
            row["duplicate_detections"] += max(0, n - 1)
            prev = last_seq.get(f.camera)
            if prev is not None and f.seq <= prev:
                row["seq_repeats"] += 1
            elif prev is not None and f.seq > prev + 1 and f.camera == chain.file_camera:
                row["seq_gaps"] += f.seq - prev - 1  # a live camera may drop frames; a file may not
            last_seq[f.camera] = max(f.seq, prev if prev is not None else -1)
        delivered_ids = Counter(a["alert_id"] for a in delivered)
        for a in expected:
            row = rows[alert_window(a)]
            row["alerts_expected"] += 1
            row["alerts_lost"] += a["alert_id"] not in delivered_ids
        first_window = {a["alert_id"]: alert_window(a) for a in delivered}
        for alert_id, n in delivered_ids.items():
            row = rows[first_window[alert_id]]
            row["alerts_delivered"] += 1
            row["alerts_duplicated"] += n - 1
            row["alerts_unexpected"] += alert_id not in ids
        return [self.summary(w, row, dets, frame_ns) for w, row in zip(windows, rows, strict=True)]

    @staticmethod
    def recovery_s(healed_ns: int, dets: list[Any]) -> float | None:
        """From the end of the fault to the first detections record produced after it (committed)."""
        after = [ts_ms for _, ts_ms, _ in dets if ts_ms * 1_000_000 > healed_ns]
        return round((min(after) * 1_000_000 - healed_ns) / 1e9, 1) if after else None

    def catch_up_s(
        self, healed_ns: int, dets: list[Any], frame_ns: dict[tuple[int, int], int]
    ) -> float | None:
        """From the end of the fault until every camera has a new frame's detections committed:
        stricter than recovery, it includes working off the backlog queued during the fault."""
        first: dict[str, int] = {}
        for d, ts_ms, _ in dets:
            if frame_ns.get((d.frame.partition, d.frame.offset), 0) > healed_ns:
                first[d.camera_id] = min(first.get(d.camera_id, ts_ms), ts_ms)
        if set(first) < set(self.cameras):
            return None
        return round(max(0.0, max(first.values()) * 1e6 - healed_ns) / 1e9, 1)

    @staticmethod
    def detections_gap_s(w: Window, dets: list[Any]) -> float | None:
        """The longest time without a new committed detections record, from the injection until
        every camera was back (`back_since`: the end of the fault's wait): how long the chain
        paused. None for a window with no fault injected."""
        if not w.injected_ns:
            return None
        end_ns = w.recovered_ns or w.healed_ns
        times = sorted(t * 1_000_000 for _, t, _ in dets if w.injected_ns < t * 1_000_000 <= end_ns)
        edges = [w.injected_ns, *times, end_ns]
        return round(max(b - a for a, b in zip(edges, edges[1:], strict=False)) / 1e9, 1)

    def summary(
        self, w: Window, row: Counter[str], dets: list[Any], frame_ns: dict[Any, int]
    ) -> dict[str, Any]:
        dup_dets = row["duplicate_detections"] if self.chain.mode == "exactly-once" else 0
        return {
            "fault": w.fault.name,
            "mode": self.chain.mode,
            "outage_s": w.fault.outage_s,
            "fault_s": round((w.healed_ns - w.injected_ns) / 1e9, 1) if w.injected_ns else None,
            "recovery_s": self.recovery_s(w.healed_ns, dets),
            "catch_up_s": self.catch_up_s(w.healed_ns, dets, frame_ns),
            "detections_gap_s": self.detections_gap_s(w, dets),
            "alerts_expected": row["alerts_expected"],
            "alerts_delivered": row["alerts_delivered"],
            "lost": row["frames_without_detections"] + row["seq_gaps"] + row["alerts_lost"],
            "duplicates": row["seq_repeats"] + dup_dets + row["alerts_duplicated"] + row["alerts_unexpected"],
            **{k: row[k] for k in DETAILS},
            "findings": w.findings,
        }


def run_modes(
    base: SightlineConfig, dev: DevStack, options: ChaosOptions, workdir: Path, log: Log
) -> dict[str, Any]:
    rng = random.Random(options.seed)
    results = []
    for mode in options.modes:
        faults = make_faults(options.faults, options.outage_s, options.brokers)
        chain = Chain(workdir / mode, base, dev, mode, live=any(f.name == "rtsp" for f in faults))
        results += ModeRun(chain, options, rng, log).run(faults)
    recoveries = [r["recovery_s"] for r in results]
    gaps = [r["detections_gap_s"] for r in results if r["detections_gap_s"] is not None]
    return {
        "faults": results,
        "lost": sum(r["lost"] for r in results),
        "duplicates": sum(r["duplicates"] for r in results),
        "max_recovery_s": None if None in recoveries else max(recoveries, default=0.0),
        "max_catch_up_s": None
        if any(r["catch_up_s"] is None for r in results)
        else max((r["catch_up_s"] for r in results), default=0.0),
        "max_detections_gap_s": max(gaps, default=None),
        "findings": sum(len(r["findings"]) for r in results),
        "brokers": options.brokers,
        "seed": options.seed,
        "duration_s": options.duration_s,
        "workdir": str(workdir),
    }


def run_chaos(base: SightlineConfig, options: ChaosOptions, workdir: Path | None, log: Log) -> dict[str, Any]:
    """On a throw-away Kafka + Redis of its own (free ports, a temp dir), behind Toxiproxy: it
    kills them. Every broker advertises its proxy's address, so no client goes around it."""
    workdir = Path(workdir or tempfile.mkdtemp(prefix="sightline-chaos-")).resolve()
    os.environ.setdefault("PYTHONFAULTHANDLER", "1")  # stages inherit it: a stuck one is SIGABRTed
    make_faults(options.faults, options.outage_s, options.brokers)  # fail fast on a bad --faults
    settings = DevSettings(kafka_port=free_port(), kafka_controller_port=free_port(), redis_port=free_port(),
                           data_dir=workdir / "stack")  # fmt: skip
    dev = DevStack(settings, brokers=options.brokers, proxied=True)
    log(f"starting {options.brokers} Kafka broker(s), Redis and Toxiproxy in {settings.data_dir} ...")
    dev.up()
    config = base.model_copy(
        update={
            "kafka": base.kafka.model_copy(update={"bootstrap_servers": dev.bootstrap_servers}),
            "redis": base.redis.model_copy(update={"url": dev.redis_url}),
            "dev": settings,
        },
        deep=True,
    )
    try:
        return run_modes(config, dev, options, workdir, log)
    finally:
        dev.down()
