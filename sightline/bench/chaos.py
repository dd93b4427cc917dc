"""`sightline bench chaos`: the whole chain as processes, with one fault at a time injected.

The chain is the demo's (`sightline.demo.Demo`), on a private Kafka + Redis: a decoder reading
a recorded file at real time (every frame through the Redis claim check), an inference worker
in one delivery mode, the alert processors with rules that fire often, and a local webhook
receiver; an RTSP camera with its own decoder joins when the `rtsp` fault is asked for.

Each fault is a small object (`inject()`, `heal()`) applied after a seeded random stretch of
normal running. Afterwards the frames and the committed detections are read back and checked
(every frame has its detections record; `seq` neither skips nor repeats), and the alerts the
receiver got are compared with what `sightline alerts test-rules` computes offline from the
committed detections: anything missing is lost, anything extra or repeated is a duplicate.
A stage that exits on its own is restarted and recorded, never hidden.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

from schemas.detections import DetectionsRecord
from schemas.errors import ContractError
from sightline.assets import fetch_registered_model, media_path
from sightline.bench.cleanup import Created, delete_created
from sightline.config import DevSettings, KafkaSettings, SightlineConfig
from sightline.demo import Demo
from streams import topic_reader
from streams.devinfra import DevStack, free_port
from streams.kafka import consumer_config
from streams.topics import ensure_topics

Log = Callable[[str], None]
MODES = ("at-least-once", "exactly-once")
CLIP = "vtest.avi"
FPS = 5  # per camera: leaves the worker headroom on a small machine
SESSION_TIMEOUT_S = consumer_config(KafkaSettings(), "x")["session.timeout.ms"] / 1000


# -- the chain ---------------------------------------------------------------------------
def camera_rules(camera: str) -> dict[str, Any]:
    """Rules for `vtest.avi` (768x576, people crossing a road) that fire every few seconds."""
    return {
        "camera": camera,
        "anchor": "bottom_center",
        "lateness_s": 1,
        "track_ttl_s": 5,
        "lanes": [
            {
                "name": "road-crossing",
                "line": {"start": [430, 190], "end": [430, 500], "direction": "any", "band_px": 8},
                "classes": ["person"],
                "min_confidence": 0.4,
                "window_s": 10,
                "session": {"idle_gap_s": 5},
            }
        ],
        "defects": [
            {
                "name": "vehicle-parked",
                "classes": ["car", "truck", "bus"],
                "roi": [[590, 40], [768, 40], [768, 135], [590, 135]],
                "min_confidence": 0.3,
                "k": 3,
                "n": 5,
            }
        ],
        "anomalies": [{"name": "people-count", "classes": ["person"], "bucket_s": 2, "warmup_buckets": 3}],
        "thresholds": [
            {"name": "crowd", "metric": "count", "classes": ["person"], "op": ">=", "value": 3,
             "for_s": 1, "cooldown_s": 5},
            {"name": "loiter", "metric": "dwell", "classes": ["person"],
             "zone": [[0, 140], [340, 140], [340, 215], [0, 215]], "op": ">", "value": 3},
        ],
    }  # fmt: skip


class Chain(Demo):
    """The demo's processes for one delivery mode, on fresh topics, with restartable parts."""

    def __init__(self, workdir: Path, base: SightlineConfig, dev: DevStack, mode: str, live: bool) -> None:
        super().__init__(workdir, base)
        self.dev, self.mode, self.live = dev, mode, live
        self.tag = f"chaos-{'eo' if mode == 'exactly-once' else 'alo'}-{uuid.uuid4().hex[:6]}"
        self.file_camera, self.live_camera = f"{self.tag}-file", f"{self.tag}-live"
        self.receivers: list[Any] = []
        self.receiver_port = 0
        self.held: set[str] = set()  # stages a fault keeps down: not restarted by `supervise`
        self.findings: list[str] = []
        self.restart_at: dict[str, float] = {}
        self.commands = {
            "decoder": ("decode", "--camera", self.file_camera, "--realtime"),
            "live-decoder": ("decode", "--camera", self.live_camera),
            "inference": ("infer", "--worker-id", f"{self.tag}-1", "--delivery", mode),
            "inference-standby": ("infer", "--worker-id", f"{self.tag}-2", "--delivery", mode),
            "alerts": ("alerts", "run"),
        }
        self.config = self._sightline_config()

    def _sightline_config(self) -> SightlineConfig:
        topics = {name: t.model_copy(update={"name": f"{self.tag}.{name}"}) for name, t in self.base.topics}
        return self.base.model_copy(update={"topics": self.base.topics.model_copy(update=topics)}, deep=True)

    @property
    def rules_file(self) -> Path:
        return self.workdir / "rules.yaml"

    def _config(self) -> dict[str, Any]:
        data = self.config.model_dump(mode="json")
        cameras = [{"id": self.file_camera, "url": str(media_path(CLIP)), "loop": True, "fps": FPS}]
        if self.relay is not None:
            cameras.append({"id": self.live_camera, "url": self.relay.url(self.live_camera),
                            "rtsp_transport": "udp", "fps": FPS, "stall_timeout_s": 5})  # fmt: skip
        data["cameras"] = cameras
        data["frames"]["inline_max_bytes"] = 1024  # every frame goes through the Redis claim check
        data["inference"].update(registry_dir=str(Path(self.base.inference.registry_dir).resolve()),
                                 group_id=f"{self.tag}-inference", delivery=self.mode)  # fmt: skip
        hook = {"name": "chaos", "url": self.receiver.url, "secret_env": "SIGHTLINE_DEMO_WEBHOOK_SECRET"}
        data["alerts"].update(
            app_id=self.tag,
            redis_prefix=f"sightline:{self.tag}",
            rules_file=str(self.rules_file),
            rules=None,
            webhooks=[hook],
        )
        data["metrics"].update(decoder_port=0, inference_port=0, alerts_port=0)
        data["drift"]["metrics_port"] = 0
        return data

    def start(self, with_api: bool = False) -> None:
        from inference.registry import ModelRegistry
        from sightline.rtsp_camera import RtspRelay

        ensure_topics(self.config)
        fetch_registered_model(self.base.inference.model, ModelRegistry(self.base.inference.registry_dir))
        if self.live:
            self.relay = RtspRelay({self.live_camera: media_path(CLIP)}, log_dir=self.workdir).start()
        self.start_receiver()
        cameras = [self.file_camera] + ([self.live_camera] if self.live else [])
        self.rules_file.write_text(
            yaml.safe_dump({"version": 1, "cameras": [camera_rules(c) for c in cameras]})
        )
        (self.workdir / "sightline.yaml").write_text(yaml.safe_dump(self._config(), sort_keys=False))
        for name in ("decoder", "inference", "alerts") + (("live-decoder",) if self.live else ()):
            self.spawn(name)

    # -- stages --------------------------------------------------------------------------
    def spawn(self, name: str) -> None:
        self._spawn(name, *self.commands[name])

    def kill(self, name: str, sig: signal.Signals = signal.SIGKILL) -> None:
        proc = self.children[name]
        if proc.poll() is None:
            os.killpg(proc.pid, sig)
            if sig == signal.SIGKILL:
                proc.wait()

    def supervise(self) -> None:
        """What a supervisor does: a stage that exited by itself is a finding, and is restarted
        (at most every 2 s, so a crash loop shows as a count rather than a busy loop)."""
        now = time.monotonic()
        for name, proc in list(self.children.items()):
            if name in self.held or proc.poll() is None or now < self.restart_at.get(name, 0.0):
                continue
            self.findings.append(f"{name} exited (rc={proc.returncode})")
            self.restart_at[name] = now + 2.0
            self.spawn(name)

    def start_receiver(self) -> None:
        from alerts.webhooks.receiver import Receiver

        self.receiver = Receiver(self.secret, port=self.receiver_port).start()
        self.receiver_port = self.receiver.port
        self.receivers.append(self.receiver)

    def deliveries(self) -> list[Any]:
        return [d for r in self.receivers for d in list(r.deliveries)]


# -- faults ------------------------------------------------------------------------------
@dataclass
class Fault:
    """One failure: `inject` breaks something, `heal` ends the failure `outage_s` later."""

    name: str
    outage_s: float = 0.0
    holds: tuple[str, ...] = ()  # stages this fault keeps down on purpose

    def inject(self, chain: Chain) -> None:
        raise NotImplementedError

    def heal(self, chain: Chain) -> None:
        raise NotImplementedError


@dataclass
class ServiceKill(Fault):
    """kill -9 of Kafka or Redis; started again on the same data."""

    service: str = "kafka"

    def inject(self, chain: Chain) -> None:
        chain.dev.kill(self.service)

    def heal(self, chain: Chain) -> None:
        chain.dev.start(self.service)


@dataclass
class StageKill(Fault):
    """kill -9 of one stage's process, then a restart (as a supervisor would)."""

    stage: str = "inference"

    def __post_init__(self) -> None:
        self.holds = (self.stage,)  # restarted by `heal`, not by the supervisor

    def inject(self, chain: Chain) -> None:
        chain.kill(self.stage)

    def heal(self, chain: Chain) -> None:
        chain.spawn(self.stage)


@dataclass
class Zombie(Fault):
    """SIGSTOP of the worker past its session timeout: a standby worker takes its partitions,
    then SIGCONT wakes the old one, which must be fenced rather than write stale results."""

    def inject(self, chain: Chain) -> None:
        chain.kill("inference", signal.SIGSTOP)
        if "inference-standby" not in chain.children:
            chain.spawn("inference-standby")

    def heal(self, chain: Chain) -> None:
        chain.kill("inference", signal.SIGCONT)


@dataclass
class ReceiverDown(Fault):
    """The webhook endpoint goes away (connection refused), then comes back on the same port."""

    def inject(self, chain: Chain) -> None:
        chain.receiver.stop()

    def heal(self, chain: Chain) -> None:
        chain.start_receiver()


@dataclass
class CameraDown(Fault):
    """The RTSP server dies, and comes back on the same URL."""

    def inject(self, chain: Chain) -> None:
        assert chain.relay is not None
        chain.relay.kill()

    def heal(self, chain: Chain) -> None:
        from sightline.rtsp_camera import RtspRelay

        assert chain.relay is not None
        chain.relay = RtspRelay(chain.relay.streams, chain.relay.client_port, chain.workdir).start()


def make_faults(names: list[str], outage_s: float | None) -> list[Fault]:
    """The catalogue; `outage_s` shortens every outage (the zombie still outlives its session)."""

    def out(default: float) -> float:
        return default if outage_s is None else outage_s

    catalogue: dict[str, Callable[[], Fault]] = {
        "kafka": lambda: ServiceKill("kafka", out(20), service="kafka"),
        "redis": lambda: ServiceKill("redis", out(20), service="redis"),
        "worker": lambda: StageKill("worker", stage="inference"),
        "alerts": lambda: StageKill("alerts", stage="alerts"),
        "decoder": lambda: StageKill("decoder", stage="decoder"),
        "zombie": lambda: Zombie("zombie", max(out(SESSION_TIMEOUT_S + 5), SESSION_TIMEOUT_S + 2)),
        "webhook": lambda: ReceiverDown("webhook", out(60)),
        "rtsp": lambda: CameraDown("rtsp", out(30)),
    }  # fmt: skip
    unknown = [n for n in names if n not in catalogue]
    if unknown:
        raise ValueError(f"unknown fault(s) {', '.join(unknown)}; choose from {', '.join(catalogue)}")
    return [catalogue[n]() for n in names]


DETAILS = ("frames", "frames_without_detections", "duplicate_detections", "seq_gaps", "seq_repeats",
           "dead_letters", "alerts_lost", "alerts_duplicated", "alerts_unexpected")  # fmt: skip
FAULTS = ("kafka", "redis", "worker", "alerts", "decoder", "zombie", "webhook", "rtsp")


# -- reading the topics back -------------------------------------------------------------
@dataclass(frozen=True)
class FrameRow:
    camera: str
    seq: int
    capture_ns: int
    partition: int
    offset: int
    ts_ms: int


def read_topic(config: SightlineConfig, topic: str, timeout_s: float = 60.0) -> list[Message]:
    """Every committed record of `topic`, partition by partition in offset order."""
    consumer = Consumer({**consumer_config(config.kafka, f"chaos-audit-{uuid.uuid4().hex}"), "log_level": 0})
    try:
        return list(topic_reader.read_topic(consumer, topic, timeout_s=timeout_s))
    finally:
        consumer.close()


def frame_rows(messages: list[Any]) -> list[FrameRow]:
    rows = []
    for m in messages:
        h = {k: (v or b"").decode() for k, v in m.headers() or []}
        rows.append(FrameRow(h["camera-id"], int(h["seq"]), int(h["capture-ns"]), m.partition(), m.offset(),
                             m.timestamp()[1]))  # fmt: skip
    return rows


def detections(messages: list[Any]) -> list[tuple[DetectionsRecord, int, bytes]]:
    out = []
    for m in messages:
        try:
            out.append((DetectionsRecord.decode(m.value() or b""), m.timestamp()[1], m.value()))
        except ContractError:
            continue
    return out


def replay_alerts(chain: Chain, dets: list[tuple[DetectionsRecord, int, bytes]]) -> list[dict[str, Any]]:
    """`sightline alerts test-rules` over the committed detections, one per (camera, seq):
    what a fault-free run delivers."""
    seen: set[tuple[str, int]] = set()
    path = chain.workdir / "committed-detections.jsonl"
    with path.open("w") as fh:
        for rec, _, value in dets:
            if (rec.camera_id, rec.seq) not in seen:
                seen.add((rec.camera_id, rec.seq))
                fh.write(json.dumps(json.loads(value)) + "\n")
    env = {**os.environ, "SIGHTLINE_CONFIG": str(chain.workdir / "sightline.yaml")}
    done = subprocess.run(
        [sys.executable, "-m", "sightline.cli", "alerts", "test-rules", "--from", str(path),
         "--rules", str(chain.rules_file), "--no-flush"],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"alerts test-rules failed: {done.stderr[-2000:]}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


# -- the run -----------------------------------------------------------------------------
class Probe:
    """Tails the frames and the committed detections: is every camera's output back?"""

    def __init__(self, config: SightlineConfig) -> None:
        self.consumer = Consumer(
            {**consumer_config(config.kafka, f"chaos-probe-{uuid.uuid4().hex}"), "log_level": 0}
        )
        self.frames, self.detections = config.topics.frames.name, config.topics.detections.name
        assignment = []
        for topic in (self.frames, self.detections):
            parts = topic_reader.partitions_of(self.consumer, topic)
            assignment += [TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts]
        self.consumer.assign(assignment)
        self.frame_ns: dict[tuple[int, int], int] = {}
        self.pending: list[tuple[str, int, int]] = []
        self.newest: dict[str, int] = {}  # camera -> newest frame time (ns) that has its detections
        self.newest_frame: dict[str, int] = {}  # camera -> newest frame time (ns) on the topic

    def poll(self, timeout: float) -> None:
        for m in self.consumer.consume(200, timeout):
            if m.error() is not None:
                continue
            if m.topic() == self.frames:
                ts = self.frame_ns[(m.partition(), m.offset())] = m.timestamp()[1] * 1_000_000
                camera = (m.key() or b"").decode(errors="replace")
                self.newest_frame[camera] = max(self.newest_frame.get(camera, 0), ts)
            else:
                try:
                    rec = json.loads(m.value())
                    self.pending.append((rec["camera_id"], rec["frame"]["partition"], rec["frame"]["offset"]))
                except (ValueError, KeyError, TypeError):
                    continue
        waiting = []
        for camera, partition, offset in self.pending:
            ts = self.frame_ns.get((partition, offset))
            if ts is None:
                waiting.append((camera, partition, offset))
            else:
                self.newest[camera] = max(self.newest.get(camera, 0), ts)
        self.pending = waiting

    def back_since(self, t_ns: int, cameras: list[str]) -> bool:
        """Every camera has a frame newer than `t_ns` with its detections."""
        return all(self.newest.get(c, 0) > t_ns for c in cameras)

    def close(self) -> None:
        self.consumer.close()


@dataclass
class Window:
    """One fault's stretch of the run: from the end of the previous one to the end of its own."""

    fault: Fault
    start_ns: int
    healed_ns: int = 0
    findings: list[str] = field(default_factory=list)


@dataclass
class ChaosOptions:
    faults: list[str] = field(default_factory=lambda: list(FAULTS))
    modes: list[str] = field(default_factory=lambda: list(MODES))
    duration_s: float = 30.0  # normal running before each fault: a seeded 50-100% of this
    outage_s: float | None = None
    recovery_timeout_s: float = 90.0
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
        fault.inject(chain)
        self.tick(fault.outage_s)
        fault.heal(chain)
        chain.held.difference_update(fault.holds)
        window.healed_ns = time.time_ns()
        self.log(f"{fault.name}: healed; waiting for new frames with detections from every camera")
        if not self.wait(lambda: self.back_since(window.healed_ns), self.options.recovery_timeout_s):
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
        window.findings.append(
            f"no new detections {timeout:.0f} s after healing; restarted {', '.join(stuck)}"
        )
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

    def summary(
        self, w: Window, row: Counter[str], dets: list[Any], frame_ns: dict[Any, int]
    ) -> dict[str, Any]:
        dup_dets = row["duplicate_detections"] if self.chain.mode == "exactly-once" else 0
        return {
            "fault": w.fault.name,
            "mode": self.chain.mode,
            "outage_s": w.fault.outage_s,
            "recovery_s": self.recovery_s(w.healed_ns, dets),
            "catch_up_s": self.catch_up_s(w.healed_ns, dets, frame_ns),
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
        faults = make_faults(options.faults, options.outage_s)
        chain = Chain(workdir / mode, base, dev, mode, live=any(f.name == "rtsp" for f in faults))
        results += ModeRun(chain, options, rng, log).run(faults)
    recoveries = [r["recovery_s"] for r in results]
    return {
        "faults": results,
        "lost": sum(r["lost"] for r in results),
        "duplicates": sum(r["duplicates"] for r in results),
        "max_recovery_s": None if None in recoveries else max(recoveries, default=0.0),
        "max_catch_up_s": None
        if any(r["catch_up_s"] is None for r in results)
        else max((r["catch_up_s"] for r in results), default=0.0),
        "findings": sum(len(r["findings"]) for r in results),
        "seed": options.seed,
        "duration_s": options.duration_s,
        "workdir": str(workdir),
    }


def run_chaos(base: SightlineConfig, options: ChaosOptions, workdir: Path | None, log: Log) -> dict[str, Any]:
    """On a throw-away Kafka + Redis of its own (free ports, a temp dir): it kills them."""
    workdir = Path(workdir or tempfile.mkdtemp(prefix="sightline-chaos-")).resolve()
    os.environ.setdefault("PYTHONFAULTHANDLER", "1")  # stages inherit it: a stuck one is SIGABRTed
    make_faults(options.faults, options.outage_s)  # fail fast on a bad --faults
    settings = DevSettings(kafka_port=free_port(), kafka_controller_port=free_port(), redis_port=free_port(),
                           data_dir=workdir / "stack")  # fmt: skip
    dev = DevStack(settings)
    log(f"starting a private Kafka and Redis in {settings.data_dir} ...")
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
