"""The chaos benchmark's faults: each a small object whose `inject` breaks one thing and whose
`heal` ends it `outage_s` later (a fault that runs in steps says itself when it is `settled`).

Processes: kill -9 (broker, Redis, a stage), SIGSTOP (the worker past its session timeout, a
broker, Redis). Network, through Toxiproxy in front of every broker (the benchmark's stack
advertises the proxy's addresses, so no client goes around it): latency, replies dropped while
requests still arrive (a commit whose outcome the client cannot know), connections reset.
Cluster (`--brokers 3`): a rolling restart of every broker while frames flow, and kill -9 of the
broker that leads the frames partitions.
"""

from __future__ import annotations

import signal
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sightline.config import KafkaSettings
from streams.kafka import consumer_config, make_admin
from streams.toxiproxy import Stream

if TYPE_CHECKING:
    from sightline.bench.chaos_chain import Chain

SESSION_TIMEOUT_S = consumer_config(KafkaSettings(), "x")["session.timeout.ms"] / 1000


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

    def settled(self) -> bool:
        """Whether the failure has run its course (`heal` is called only then)."""
        return True


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


@dataclass
class ServicePause(Fault):
    """SIGSTOP of a broker or Redis, SIGCONT `outage_s` later: a process that hangs with its
    connections open (a long GC pause, a frozen VM), so requests go unanswered, not refused."""

    service: str = "kafka"

    def inject(self, chain: Chain) -> None:
        chain.dev.signal(self.service, signal.SIGSTOP)

    def heal(self, chain: Chain) -> None:
        chain.dev.signal(self.service, signal.SIGCONT)


@dataclass
class BrokerToxic(Fault):
    """A Toxiproxy toxic on every client connection to every broker, open or new, for `outage_s`.
    `downstream` is broker -> client: a `timeout` toxic there drops the replies while the
    requests still reach the broker, and closes those connections when it is removed."""

    kind: str = "latency"
    stream: Stream = "downstream"
    attributes: dict[str, int] = field(default_factory=dict)

    def _each_broker(self, chain: Chain, call: Callable[[str], object]) -> None:
        for node in chain.dev.nodes:
            call(node.service)

    def inject(self, chain: Chain) -> None:
        proxy = chain.dev.toxiproxy
        self._each_broker(
            chain, lambda name: proxy.add_toxic(name, self.kind, self.stream, **self.attributes)
        )
        proxy.close()

    def heal(self, chain: Chain) -> None:
        proxy = chain.dev.toxiproxy
        self._each_broker(chain, lambda name: proxy.remove_toxic(name, f"{self.kind}_{self.stream}"))
        proxy.close()


@dataclass
class RollingRestart(Fault):
    """Each broker in turn: SIGTERM (its controlled shutdown hands its leaderships over), start
    again, and wait until every partition is fully in sync before the next, as an upgrade rolls
    through a cluster. It runs beside the chain, which keeps being supervised and followed."""

    errors: list[str] = field(default_factory=list)
    _thread: threading.Thread | None = None

    def inject(self, chain: Chain) -> None:
        def roll() -> None:
            try:
                for node in chain.dev.nodes:
                    chain.dev.stop(node.service)
                    chain.dev.start(node.service)
                    chain.dev.wait_replicated()
            except Exception as exc:  # reported as a finding: the run goes on to its audit
                self.errors.append(f"rolling restart failed: {exc}")

        self._thread = threading.Thread(target=roll, name="rolling-restart", daemon=True)
        self._thread.start()

    def settled(self) -> bool:
        return self._thread is None or not self._thread.is_alive()

    def heal(self, chain: Chain) -> None:
        chain.findings.extend(self.errors)


@dataclass
class LeaderKill(Fault):
    """kill -9 of the broker leading the most frames partitions, started again `outage_s` later:
    the decoder's producer and the worker must follow the leaders elected from the in-sync
    replicas, and min.insync.replicas 2 still holds with two brokers."""

    service: str = ""

    def inject(self, chain: Chain) -> None:
        name = chain.config.topics.frames.name
        topic = make_admin(chain.config.kafka).list_topics(name, timeout=10).topics[name]
        leader, _ = Counter(p.leader for p in topic.partitions.values()).most_common(1)[0]
        self.service = chain.dev.node(leader).service
        chain.dev.kill(self.service)

    def heal(self, chain: Chain) -> None:
        chain.dev.start(self.service)


FAULTS = ("kafka", "redis", "worker", "alerts", "decoder", "zombie", "webhook", "rtsp", "kafka-pause",
          "kafka-pause-long", "kafka-latency", "kafka-blackhole", "kafka-reset", "redis-pause")  # fmt: skip
CLUSTER_FAULTS = ("rolling-restart", "leader-kill")  # need three brokers
DETAILS = ("frames", "frames_without_detections", "duplicate_detections", "seq_gaps", "seq_repeats",
           "dead_letters", "alerts_lost", "alerts_duplicated", "alerts_unexpected")  # fmt: skip


def default_faults(brokers: int) -> list[str]:
    return list(FAULTS) + (list(CLUSTER_FAULTS) if brokers >= 3 else [])


def make_faults(names: list[str], outage_s: float | None, brokers: int = 1) -> list[Fault]:
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
        "kafka-pause": lambda: ServicePause("kafka-pause", out(20), service="kafka"),
        "kafka-pause-long": lambda: ServicePause("kafka-pause-long", out(35), service="kafka"),
        "kafka-latency": lambda: BrokerToxic("kafka-latency", out(30), kind="latency",
                                             attributes={"latency": 2000}),
        "kafka-blackhole": lambda: BrokerToxic("kafka-blackhole", out(15), kind="timeout",
                                               attributes={"timeout": 0}),
        "kafka-reset": lambda: BrokerToxic("kafka-reset", out(10), kind="reset_peer",
                                           attributes={"timeout": 0}),
        "redis-pause": lambda: ServicePause("redis-pause", out(20), service="redis"),
        "rolling-restart": lambda: RollingRestart("rolling-restart"),
        "leader-kill": lambda: LeaderKill("leader-kill", out(20)),
    }  # fmt: skip
    unknown = [n for n in names if n not in catalogue]
    if unknown:
        raise ValueError(f"unknown fault(s) {', '.join(unknown)}; choose from {', '.join(catalogue)}")
    cluster = [n for n in names if n in CLUSTER_FAULTS]
    if cluster and brokers < 3:
        raise ValueError(f"fault(s) {', '.join(cluster)} need a cluster: --brokers 3")
    return [catalogue[n]() for n in names]
