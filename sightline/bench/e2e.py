"""`sightline bench e2e`: the whole chain timed from glass to webhook, at 70% and at 150% load.

First the inference worker's capacity (frames/s) is measured the way `sightline bench
inference` measures `pipeline_fps`: a backlog of frame records drained by one worker process.
Then, per delivery mode (at-least-once, then exactly-once), the chaos bench's chain runs as
processes on fresh topics of the local Kafka (`sightline dev up`): one decoder (`sightline
decode --realtime`), `sightline infer`, `sightline alerts run` and an in-process webhook receiver
that verifies signatures. The cameras (`e2e_stats.plan_cameras`):

- normal phase, ~70% of capacity: N cameras at `0.7 x capacity / N` fps each (N defaults to
  the fewest the video's native rate allows, at least 2), half of them RTSP cameras
  (`RtspRelay`, freshness "realtime"), half `vtest.avi` replayed at real time (freshness
  "complete");
- overload phase, ~150%: extra RTSP cameras at the same fps on a second relay and decoder, so
  only realtime cameras push the load over capacity; then they stop, and the time until every
  remaining camera's newest frames have detections again is `catch_up_s`.

The rules are one `count >= 1` person threshold per cell of a 3x3 grid, with `lateness_s: 0`,
no window and no `for_s`: nothing in them waits, so capture -> webhook is the chain's own
delay. Latencies: capture -> detections until a read_committed reader sees the record (for
exactly-once that includes the transaction commit), over frames the model ran; capture ->
webhook until the receiver got the alert. Each is counted in the phase its capture falls in.
The audit is the chaos bench's (`ModeRun.audit`): frames without detections, seq gaps and
expected alerts (`alerts test-rules` over the committed detections) never delivered are lost;
exactly-once detections records beyond one per frame, repeated and unexpected alerts are
duplicates.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from inference.registry import ModelRegistry
from sightline.assets import fetch_registered_model, media_path
from sightline.bench import e2e_stats as stats
from sightline.bench.chaos import CLIP, DETAILS, MODES, ChaosOptions, Fault, ModeRun, Window
from sightline.bench.cleanup import Created, delete_created, removed_after
from sightline.bench.drain import GroupLag, drain, publish_backlog
from sightline.bench.e2e_chain import DetectionsTail, E2EChain, Overload
from sightline.bench.inference import isolated, native_fps
from sightline.config import SightlineConfig, load_config
from streams.devinfra import DevStack

Log = Callable[[str], None]
AUDIT = ("alerts_expected", "alerts_delivered", "lost", "duplicates", *DETAILS)  # per phase


@dataclass(frozen=True)
class E2EOptions:
    duration_s: float = 30.0  # each of the normal and the overload phase
    cameras: int | None = None  # normal-phase cameras (default: from capacity and the native rate)
    capacity_fps: float | None = None  # skip the capacity measurement
    capacity_frames: int = 200
    modes: tuple[str, ...] = MODES
    catch_up_timeout_s: float = 120.0


class E2ERun(ModeRun):
    """One delivery mode: warm up, normal load, overload, catch-up, drain; then the chaos audit."""

    def __init__(self, chain: E2EChain, options: E2EOptions, log: Log) -> None:
        chaos = ChaosOptions(faults=[], modes=[chain.mode], duration_s=options.duration_s)
        super().__init__(chain, chaos, random.Random(0), log)  # nothing here is random
        self.chain: E2EChain = chain
        self.e2e = options

    @property
    def cameras(self) -> list[str]:
        """The cameras that run on after the overload: the catch-up waits for them."""
        return [c.id for c in self.chain.cameras if not c.overload]

    def current(self, tail: DetectionsTail, within_s: float = 2.0) -> bool:
        """Every camera has detections of a frame captured within the last `within_s`."""
        now = time.time_ns()
        return all(now - tail.newest.get(c, 0) < within_s * 1e9 for c in self.cameras)

    def run_phases(self) -> dict[str, Any]:
        chain, duration = self.chain, self.e2e.duration_s
        try:
            self.log(f"starting the chain (logs: {chain.workdir})")
            normal = Window(Fault("normal"), 0)
            chain.findings = normal.findings  # what `supervise` finds goes to the phase it happens in
            chain.start()
            tail = self.probe = DetectionsTail(chain.config)
            # Warm-up ends once every camera is current (a complete camera's frames from the
            # worker's start-up are worked through), so the normal phase measures no backlog.
            if not self.wait(lambda: self.current(tail) and bool(chain.deliveries()), 180):
                raise RuntimeError(f"not every camera current, or no webhook, in 180 s; see {chain.workdir}")
            cpu = [self.cpu_snapshot()]
            normal.start_ns = time.time_ns()
            self.log(f"normal load: {self.chain.plan.normal} cameras for {duration:.0f} s")
            self.tick(duration)
            cpu.append(self.cpu_snapshot())
            overload = Window(Overload("overload", duration), time.time_ns())
            chain.findings = overload.findings
            overload.fault.inject(chain)
            extra = {c.id for c in chain.cameras if c.overload}
            if not self.wait(lambda: extra <= tail.cameras, 120):  # relay, RTSP set-up, first frames
                raise RuntimeError(f"the overload's cameras sent nothing in 120 s; see {chain.workdir}")
            overload_ns = time.time_ns()  # the ramp before it is in neither phase's latencies
            cpu.append(self.cpu_snapshot())
            self.log(f"overload: {self.chain.plan.overload} cameras for {duration:.0f} s")
            self.tick(duration)
            cpu.append(self.cpu_snapshot())
            overload.fault.heal(chain)
            overload.healed_ns = time.time_ns()
            self.log("overload stopped; waiting for every remaining camera to catch up")
            if not self.wait(
                lambda: all(tail.newest.get(c, 0) > overload.healed_ns for c in self.cameras),
                self.e2e.catch_up_timeout_s,
            ):
                chain.findings.append(f"not caught up {self.e2e.catch_up_timeout_s:.0f} s after the overload")
            self.log(f"caught up after {(time.time_ns() - overload.healed_ns) / 1e9:.1f} s; draining")
            self.drain()
            rows = self.audit([normal, overload])
            phases = stats.Phases(normal.start_ns, overload.start_ns, overload_ns, overload.healed_ns)
            return self.report(tail, rows, phases, cpu)
        finally:
            if self.probe is not None:
                self.probe.close()
            chain.shutdown()
            for problem in delete_created(chain.config.kafka, Created(prefixes={chain.tag})):
                self.log(f"cleanup: {problem}")

    def drain(self) -> None:
        """Stop the decoder, then wait until the worker has committed every frame."""
        self.chain.stop_stage("decoder")
        lag = GroupLag(load_config(self.chain.workdir / "sightline.yaml"))  # as the worker sees it
        try:
            if not self.wait(lambda: lag() == 0, 120, step=1):
                self.chain.findings.append("frames left uncommitted 120 s after the decoder stopped")
        finally:
            lag.close()

    def cpu_snapshot(self) -> stats.Snapshot:
        """CPU seconds so far of each stage process, the webhook receiver's thread, Kafka,
        Redis and the whole machine (every core, anything running)."""
        snap: stats.Snapshot = {}
        pids = {name: proc.pid for name, proc in self.chain.children.items() if proc.poll() is None}
        pids.update({s.name: s.pid for s in self.chain.dev.status() if s.pid is not None})
        for name, pid in pids.items():
            cpu = stats.process_cpu_s(pid)
            if cpu is not None:
                snap[name] = ((pid,), cpu)
        tids = tuple(
            t.native_id for t in threading.enumerate() if t.name == "webhook-receiver" and t.native_id
        )
        snap["receiver"] = (tids, sum(stats.process_cpu_s(os.getpid(), tid) or 0.0 for tid in tids))
        snap["machine"] = ((), stats.machine_busy_s())
        return snap

    def report(
        self,
        tail: DetectionsTail,
        rows: list[dict[str, Any]],
        phases: stats.Phases,
        cpu: list[stats.Snapshot],
    ) -> dict[str, Any]:
        chain = self.chain
        policy = {c.id: c.policy for c in chain.cameras}
        frames = stats.first_of(tail.records, lambda r: (r.camera, r.seq))
        dets = [stats.Sample(r.camera, r.capture_ns, r.arrived_ns) for r in frames if not r.skipped]
        deliveries = stats.first_of(chain.deliveries(), lambda d: d.alert_id)
        hooks = [
            stats.Sample(orjson.loads(d.body)["camera_id"], d.capture_ns, d.received_ns) for d in deliveries
        ]
        normal, overload = rows
        return {
            "capture_to_detections": stats.latency_by_phase(dets, policy, phases),
            "capture_to_webhook": stats.latency_by_phase(hooks, policy, phases),
            "skipped": stats.skipped_by_policy(((r.camera, r.skipped) for r in frames), policy),
            "catch_up_s": overload["catch_up_s"],
            "lost": normal["lost"] + overload["lost"],
            "duplicates": normal["duplicates"] + overload["duplicates"],
            "audit": {row["fault"]: {k: v for k, v in row.items() if k in AUDIT} for row in rows},
            "phase_s": {k: round(v / 1e9, 1) for k, v in phases.lengths_ns().items()},
            "cpu_s": {
                "normal": stats.cpu_used(cpu[0], cpu[1]),
                "overload": stats.cpu_used(cpu[2], cpu[3]),
            },
            "findings": normal["findings"] + overload["findings"],
        }


def measure_capacity(config: SightlineConfig, frames: int, log: Log) -> float:
    """`pipeline_fps` of `sightline bench inference`: a backlog drained by one worker process."""
    with removed_after(config.kafka) as created:
        backlog = created.track(isolated(config, "e2e-capacity"))
        publish_backlog(backlog, media_path(CLIP), frames, cameras=1)
        fps = drain(backlog, frames, workers=1).fps
    log(f"worker capacity: {fps:.1f} frames/s")
    return fps


def run_e2e(config: SightlineConfig, options: E2EOptions, workdir: Path, log: Log) -> dict[str, Any]:
    dev = DevStack(config.dev)
    dev.up()
    fetch_registered_model(config.inference.model, ModelRegistry(config.inference.registry_dir))
    capacity = options.capacity_fps or measure_capacity(config, options.capacity_frames, log)
    plan = stats.plan_cameras(capacity, native_fps(media_path(CLIP)), options.cameras)
    log(f"plan: {plan}")
    modes = {}
    for mode in options.modes:
        chain = E2EChain(workdir / mode, config, dev, mode, plan)
        modes[mode] = E2ERun(chain, options, log).run_phases()
    return summarize(plan, modes, options, workdir)


def summarize(
    plan: stats.Plan, modes: dict[str, dict[str, Any]], options: E2EOptions, workdir: Path
) -> dict[str, Any]:
    """The headline figures are the worst delivery mode's; `modes` has each one."""

    def worst(kind: str, phase: str, cameras: str, key: str, half: int | None = None) -> float | None:
        values = [m[kind][phase][cameras][key] for m in modes.values()]
        values = [v if half is None else v[half] for v in values]
        return max((v for v in values if v is not None), default=None)

    catch_up = [m["catch_up_s"] for m in modes.values()]
    return {
        "capacity_fps": plan.capacity_fps,
        "cameras": plan.normal,
        "overload_cameras": plan.overload,
        "fps": plan.fps,
        "load_fps": {"normal": plan.load_fps(plan.normal), "overload": plan.load_fps(plan.overload)},
        "duration_s": options.duration_s,
        "capture_to_detections_p50_ms": worst("capture_to_detections", "normal", "all", "p50_ms"),
        "capture_to_detections_p99_ms": worst("capture_to_detections", "normal", "all", "p99_ms"),
        "capture_to_webhook_p50_ms": worst("capture_to_webhook", "normal", "all", "p50_ms"),
        "capture_to_webhook_p99_ms": worst("capture_to_webhook", "normal", "all", "p99_ms"),
        "overload_capture_to_detections_p99_ms": worst(
            "capture_to_detections", "overload", "realtime", "p99_ms"
        ),
        "overload_capture_to_webhook_p99_ms": worst("capture_to_webhook", "overload", "realtime", "p99_ms"),
        "overload_capture_to_webhook_p99_ms_by_half": [
            worst("capture_to_webhook", "overload", "realtime", "p99_ms_by_half", h) for h in (0, 1)
        ],
        "catch_up_s": None if None in catch_up else max(catch_up, default=None),
        "skipped": sum(sum(m["skipped"].values()) for m in modes.values()),
        "lost": sum(m["lost"] for m in modes.values()),
        "duplicates": sum(m["duplicates"] for m in modes.values()),
        "findings": sum(len(m["findings"]) for m in modes.values()),
        "modes": modes,
        "workdir": str(workdir),
    }
