"""The local Kafka (KRaft) and Redis behind `sightline dev up|down|status`.

Tests start the very same services through this module, so what CI exercises is a real
Apache Kafka broker and a real Redis server, never a fake. By default one broker; `--brokers 3`
runs a three-node cluster (replication 3, min.insync.replicas 2), and the chaos benchmark puts
every broker and Redis behind Toxiproxy (`proxied`), so clients can only reach them through it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from streams import kafka_node
from streams.devlayout import HOST, BrokerNode, Layout, free_port
from streams.processes import kill_process_group, pid_alive, stop_process_group
from streams.settings import DevSettings
from streams.toxiproxy import Toxiproxy, ToxiproxyError, server_binary

__all__ = ["DevStack", "DevStackError", "ServiceStatus", "free_port", "port_open"]


class DevStackError(RuntimeError):
    pass


@dataclass
class ServiceStatus:
    name: str
    running: bool
    pid: int | None
    address: str
    log_file: str
    data_dir: str


def port_open(port: int, host: str = HOST) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex((host, port)) == 0


class DevStack:
    """Kafka node(s), Redis and maybe Toxiproxy: processes whose pid files and logs live under
    `settings.data_dir`. `brokers` and `proxied` only matter for a stack not started yet: a
    started multi-broker or proxied one keeps the layout it saved."""

    def __init__(self, settings: DevSettings, brokers: int | None = None, proxied: bool = False) -> None:
        self.settings = settings
        self.root = Path(settings.data_dir).expanduser().resolve()
        saved = self.root / "layout.json"
        if saved.exists():
            self.layout = Layout.load(saved)
        elif (brokers or 1) == 1 and not proxied:
            self.layout = Layout.single(settings)
        else:
            self.layout = Layout.new(settings, brokers or 1, proxied)
        self.asked = (brokers, proxied)

    # -- addresses -------------------------------------------------------------------------
    @property
    def bootstrap_servers(self) -> str:
        return ",".join(b.address for b in self.layout.brokers)

    @property
    def redis_url(self) -> str:
        return f"redis://{HOST}:{self.layout.redis_client_port}/0"

    @property
    def nodes(self) -> tuple[BrokerNode, ...]:
        return self.layout.brokers

    def node(self, node_id: int) -> BrokerNode:
        return next(b for b in self.layout.brokers if b.node_id == node_id)

    @property
    def toxiproxy(self) -> Toxiproxy:
        if not self.layout.proxied:
            raise DevStackError("this dev stack runs without a proxy")
        return Toxiproxy(f"http://{HOST}:{self.layout.proxy_api_port}")

    # -- processes -------------------------------------------------------------------------
    def _dir(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def pid(self, name: str) -> int | None:
        pidfile = self.root / name / "pid"
        try:
            pid = int(pidfile.read_text())
        except (OSError, ValueError):
            return None
        return pid if pid_alive(pid) else None

    def _spawn(
        self, name: str, command: list[str], stdout: IO[bytes] | int, env: Mapping[str, str] | None = None
    ) -> None:
        """Start a service in its own session (Ctrl-C of `dev up` must not stop it) and record its pid."""
        proc = subprocess.Popen(
            command,
            stdout=stdout,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **env} if env else None,
        )
        (self._dir(name) / "pid").write_text(str(proc.pid))

    def _ports(self, name: str) -> list[int]:
        if name == "redis":
            return [self.layout.redis_port]
        if name == "toxiproxy":
            listen = [int(p.listen.rsplit(":", 1)[1]) for p in self.layout.proxies()]
            return [self.layout.proxy_api_port, *listen]
        node = self._node(name)
        return [p for p in (node.port, node.controller_port, node.internal_port) if p]

    def _node(self, name: str) -> BrokerNode:
        for node in self.layout.brokers:
            if node.service == name:
                return node
        raise ValueError(f"unknown service {name!r}")

    def services(self) -> list[str]:
        proxy = ["toxiproxy"] if self.layout.proxied else []
        return [b.service for b in self.layout.brokers] + ["redis"] + proxy

    # -- kafka -----------------------------------------------------------------------------
    def _cluster_id(self) -> str:
        """The id the formatted nodes share; a new one when none is formatted yet."""
        for node in self.layout.brokers:
            meta = self.root / node.service / "data" / "meta.properties"
            if meta.exists():
                for line in meta.read_text().splitlines():
                    if line.startswith("cluster.id="):
                        return line.split("=", 1)[1]
        return kafka_node.new_cluster_id()

    def _start_kafka(self, node: BrokerNode) -> None:
        kdir = self._dir(node.service)
        try:
            command = kafka_node.prepare(node, self.layout, self.settings, kdir, self._cluster_id())
        except kafka_node.KafkaNodeError as exc:
            raise DevStackError(str(exc)) from None
        with (kdir / "kafka.log").open("ab") as out:
            self._spawn(node.service, command, out)

    def _wait_kafka(self, nodes: list[BrokerNode], timeout: float) -> None:
        """Until every node in `nodes` is listed (registered, unfenced) in the cluster's metadata."""
        deadline = time.monotonic() + timeout
        # log_level 0: connection-refused noise while the broker boots is expected here.
        admin = AdminClient(
            {"bootstrap.servers": self.bootstrap_servers, "socket.timeout.ms": 2000, "log_level": 0}
        )
        last = "no answer"
        while time.monotonic() < deadline:
            for node in nodes:
                if self.pid(node.service) is None:
                    log = self.root / node.service / "kafka.log"
                    raise DevStackError(f"Kafka node {node.node_id} exited during start-up; see {log}")
            try:
                listed = set(admin.list_topics(timeout=2).brokers)
            except KafkaException as exc:
                last = str(exc.args[0] if exc.args else exc)
            else:
                missing = [n.node_id for n in nodes if n.node_id not in listed]
                if not missing:
                    return
                last = f"node(s) {missing} not in the metadata yet"
            time.sleep(0.3)
        raise DevStackError(f"Kafka did not answer a metadata request within {timeout:.0f}s: {last}")

    def wait_replicated(self, timeout: float = 120.0) -> None:
        """Until every partition has its whole replica set in sync: what a rolling restart waits
        for before it takes the next broker down."""
        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers, "log_level": 0})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                topics = admin.list_topics(timeout=5).topics.values()
            except KafkaException:
                time.sleep(1)
                continue
            if all(len(p.isrs) == len(p.replicas) for t in topics for p in t.partitions.values()):
                return
            time.sleep(1)
        raise DevStackError(f"partitions still under-replicated after {timeout:.0f}s")

    # -- redis and the proxy ---------------------------------------------------------------
    def _start_redis(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not Path(binary).exists():
            raise DevStackError("redis-server is not installed; run `make setup`")
        rdir = self._dir("redis")
        self._spawn(
            "redis",
            [binary, "--bind", HOST, "--port", str(self.layout.redis_port), "--dir", str(rdir),
             "--appendonly", "yes", "--save", "", "--protected-mode", "yes",
             "--logfile", str(rdir / "redis.log")],
            subprocess.DEVNULL,
        )  # fmt: skip

    def _wait_redis(self, timeout: float) -> None:
        import redis

        deadline = time.monotonic() + timeout
        client = redis.Redis.from_url(self.redis_url, socket_timeout=1)
        while time.monotonic() < deadline:
            if self.pid("redis") is None:
                raise DevStackError(f"Redis exited during start-up; see {self.root / 'redis' / 'redis.log'}")
            try:
                if client.ping():
                    return
            except redis.RedisError:
                time.sleep(0.1)
        raise DevStackError(f"Redis did not answer PING within {timeout:.0f}s")

    def _start_toxiproxy(self, timeout: float) -> None:
        """The server, then its proxies (it keeps none across a restart)."""
        try:
            binary = server_binary()
        except ToxiproxyError as exc:
            raise DevStackError(str(exc)) from None
        tdir = self._dir("toxiproxy")
        with (tdir / "toxiproxy.log").open("ab") as out:
            command = [str(binary), "-host", HOST, "-port", str(self.layout.proxy_api_port)]
            self._spawn("toxiproxy", command, out, env={"LOG_LEVEL": "warn"})
        client, deadline = self.toxiproxy, time.monotonic() + timeout
        while True:
            try:
                client.populate(self.layout.proxies())
                return
            except ToxiproxyError:
                if self.pid("toxiproxy") is None or time.monotonic() > deadline:
                    raise DevStackError(f"toxiproxy did not start; see {tdir / 'toxiproxy.log'}") from None
                time.sleep(0.1)
            finally:
                client.close()

    # -- public ----------------------------------------------------------------------------
    def _check_layout(self) -> None:
        brokers, proxied = self.asked
        have = len(self.layout.brokers)
        if (brokers is not None and brokers != have) or (proxied and not self.layout.proxied):
            proxy = " behind a proxy" if self.layout.proxied else ""
            raise DevStackError(
                f"the dev stack in {self.root} runs {have} broker(s){proxy};"
                " stop it and remove that folder, or use another dev.data_dir"
            )
        formatted = (self.root / "kafka" / "data" / "meta.properties").exists()
        if formatted and not (self.root / "layout.json").exists() and (have > 1 or self.layout.proxied):
            raise DevStackError(
                f"{self.root} holds a single broker's data;"
                " stop it and remove that folder, or use another dev.data_dir"
            )

    def _start(self, name: str, timeout: float) -> None:
        taken = [p for p in self._ports(name) if port_open(p)]
        if taken:
            raise DevStackError(f"port {taken[0]} is taken by another process")
        if name == "redis":
            self._start_redis()
        elif name == "toxiproxy":
            self._start_toxiproxy(timeout)
        else:
            self._start_kafka(self._node(name))

    def up(self, timeout: float = 90.0) -> list[ServiceStatus]:
        """Start whatever is not running yet; a second call reports the running services."""
        self.root.mkdir(parents=True, exist_ok=True)
        self._check_layout()
        if len(self.layout.brokers) > 1 or self.layout.proxied:
            self.layout.save(self.root / "layout.json")
        for name in reversed(self.services()):  # the proxy first: clients only know its ports
            if self.pid(name) is None:
                self._start(name, timeout)
        self._wait_redis(timeout)
        self._wait_kafka(list(self.layout.brokers), timeout)
        return self.status()

    def down(self, timeout: float = 30.0) -> None:
        """SIGTERM every service at once (a cluster's nodes stopped one by one would lose their
        quorum and wait it out), then wait for each, killing what outlives `timeout`."""
        running = {name: pid for name in self.services() if (pid := self.pid(name)) is not None}
        for pid in running.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
        for name, pid in running.items():
            with contextlib.suppress(ProcessLookupError):  # it may be gone already: the point
                stop_process_group(pid, timeout)
            (self.root / name / "pid").unlink(missing_ok=True)

    def stop(self, name: str, timeout: float = 60.0) -> None:
        """SIGTERM one service and wait (a broker's controlled shutdown moves its leaderships)."""
        self._ports(name)  # unknown names are errors
        pid = self.pid(name)
        if pid is not None:
            stop_process_group(pid, timeout)
            (self.root / name / "pid").unlink(missing_ok=True)

    def kill(self, name: str) -> None:
        """SIGKILL one service, keeping its data: how the chaos tests and benchmark crash it."""
        self._ports(name)
        pid = self.pid(name)
        if pid is None:
            return
        kill_process_group(pid)
        (self.root / name / "pid").unlink(missing_ok=True)

    def signal(self, name: str, sig: signal.Signals) -> None:
        """SIGSTOP / SIGCONT one service: a process that hangs with its sockets open."""
        pid = self.pid(name)
        if pid is None:
            raise DevStackError(f"{name} is not running")
        os.killpg(pid, sig)

    def start(self, name: str, timeout: float = 90.0) -> None:
        """Start one service again on its old data (after `kill` or `stop`), and wait until it answers."""
        if self.pid(name) is None:
            self._start(name, timeout)
        if name == "redis":
            self._wait_redis(timeout)
        elif name != "toxiproxy":
            self._wait_kafka([self._node(name)], timeout)

    def _status(self, name: str, port: int, address: str, log: str, data: str) -> ServiceStatus:
        pid, folder = self.pid(name), self.root / name
        return ServiceStatus(name, pid is not None and port_open(port), pid, address, str(folder / log),
                             str(folder / data))  # fmt: skip

    def status(self) -> list[ServiceStatus]:
        out = [self._status(b.service, b.port, b.address, "kafka.log", "data") for b in self.layout.brokers]
        out.append(self._status("redis", self.layout.redis_port, self.redis_url, "redis.log", ""))
        if self.layout.proxied:
            api = self.layout.proxy_api_port
            out.append(self._status("toxiproxy", api, f"http://{HOST}:{api}", "toxiproxy.log", ""))
        return out

    def status_dicts(self) -> list[dict[str, object]]:
        return [asdict(s) for s in self.status()]
