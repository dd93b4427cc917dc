"""The local single-node Kafka (KRaft) and Redis behind `sightline dev up|down|status`.

Tests start the very same services through this module, so what CI exercises is a real
Apache Kafka broker and a real Redis server, never a fake.
"""

from __future__ import annotations

import base64
import shutil
import socket
import subprocess
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

from confluent_kafka.admin import AdminClient

from streams.kafka_dist import kafka_libs
from streams.kafka_probe import kafka_unreachable
from streams.processes import kill_process_group, pid_alive, stop_process_group
from streams.settings import DevSettings

SERVER_PROPERTIES = """\
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:{controller_port}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs={log_dir}
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
log.retention.check.interval.ms=60000
"""

LOG4J2 = """\
Configuration:
  name: sightline-dev-kafka
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: INFO
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: kafka
        level: WARN
      - name: org.apache.kafka
        level: WARN
      - name: state.change.logger
        level: WARN
"""


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


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex((host, port)) == 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class DevStack:
    """Kafka + Redis processes whose pid files and logs live under `settings.data_dir`."""

    def __init__(self, settings: DevSettings) -> None:
        self.settings = settings
        self.root = Path(settings.data_dir).expanduser().resolve()

    # -- paths ---------------------------------------------------------------------------
    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.settings.kafka_port}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.settings.redis_port}/0"

    def _dir(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _pid(self, name: str) -> int | None:
        pidfile = self.root / name / "pid"
        try:
            pid = int(pidfile.read_text())
        except (OSError, ValueError):
            return None
        return pid if pid_alive(pid) else None

    def _spawn(self, name: str, command: list[str], stdout: IO[bytes] | int) -> None:
        """Start a service in its own session (Ctrl-C of `dev up` must not stop it) and record its pid."""
        proc = subprocess.Popen(
            command, stdout=stdout, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
        (self._dir(name) / "pid").write_text(str(proc.pid))

    # -- kafka ---------------------------------------------------------------------------
    def _kafka_command(self) -> list[str]:
        libs = kafka_libs(self.settings.kafka_version, self.settings.log4j_version)
        java = shutil.which("java") or "java"
        kdir = self._dir("kafka")
        return [
            java,
            f"-Xmx{self.settings.kafka_heap}",
            f"-Xms{self.settings.kafka_heap}",
            "-XX:+UseG1GC",
            "-XX:TieredStopAtLevel=1",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={kdir / 'log4j2.yaml'}",
            f"-Dkafka.logs.dir={kdir}",
            "-cp",
            f"{libs}/*",
        ]

    def _start_kafka(self) -> None:
        kdir = self._dir("kafka")
        props = kdir / "server.properties"
        props.write_text(
            SERVER_PROPERTIES.format(
                port=self.settings.kafka_port,
                controller_port=self.settings.kafka_controller_port,
                log_dir=kdir / "data",
            )
        )
        (kdir / "log4j2.yaml").write_text(LOG4J2)
        base = self._kafka_command()
        log = kdir / "kafka.log"
        if not (kdir / "data" / "meta.properties").exists():
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
            fmt = subprocess.run(
                [
                    *base,
                    "kafka.tools.StorageTool",
                    "format",
                    "--standalone",
                    f"--cluster-id={cluster_id}",  # one argument: ids may start with '-'
                    "-c",
                    str(props),
                ],
                capture_output=True,
                text=True,
            )
            if fmt.returncode != 0:
                raise DevStackError(f"formatting Kafka storage failed:\n{fmt.stdout}\n{fmt.stderr}")
        with log.open("ab") as out:
            self._spawn("kafka", [*base, "kafka.Kafka", str(props)], out)

    def _wait_kafka(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        # log_level 0: connection-refused noise while the broker boots is expected here.
        admin = AdminClient(
            {"bootstrap.servers": self.bootstrap_servers, "socket.timeout.ms": 2000, "log_level": 0}
        )
        last: str | None = None
        while time.monotonic() < deadline:
            if self._pid("kafka") is None:
                raise DevStackError(f"Kafka exited during start-up; see {self.root / 'kafka' / 'kafka.log'}")
            last = kafka_unreachable(admin, timeout_s=2)
            if last is None:
                return
            time.sleep(0.3)
        raise DevStackError(f"Kafka did not answer a metadata request within {timeout:.0f}s: {last}")

    # -- redis ---------------------------------------------------------------------------
    def _start_redis(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not Path(binary).exists():
            raise DevStackError("redis-server is not installed; run `make setup`")
        rdir = self._dir("redis")
        self._spawn(
            "redis",
            [
                binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.settings.redis_port),
                "--dir",
                str(rdir),
                "--appendonly",
                "yes",
                "--save",
                "",
                "--protected-mode",
                "yes",
                "--logfile",
                str(rdir / "redis.log"),
            ],
            subprocess.DEVNULL,
        )

    def _wait_redis(self, timeout: float) -> None:
        import redis

        deadline = time.monotonic() + timeout
        client = redis.Redis.from_url(self.redis_url, socket_timeout=1)
        while time.monotonic() < deadline:
            if self._pid("redis") is None:
                raise DevStackError(f"Redis exited during start-up; see {self.root / 'redis' / 'redis.log'}")
            try:
                if client.ping():
                    return
            except redis.RedisError:
                time.sleep(0.1)
        raise DevStackError(f"Redis did not answer PING within {timeout:.0f}s")

    # -- public --------------------------------------------------------------------------
    def up(self, timeout: float = 90.0) -> list[ServiceStatus]:
        """Start whatever is not running yet; a second call reports the running services."""
        self.root.mkdir(parents=True, exist_ok=True)
        if self._pid("redis") is None:
            if port_open(self.settings.redis_port):
                raise DevStackError(f"port {self.settings.redis_port} is taken by another process")
            self._start_redis()
        if self._pid("kafka") is None:
            for port in (self.settings.kafka_port, self.settings.kafka_controller_port):
                if port_open(port):
                    raise DevStackError(f"port {port} is taken by another process")
            self._start_kafka()
        self._wait_redis(timeout)
        self._wait_kafka(timeout)
        return self.status()

    def down(self, timeout: float = 30.0) -> None:
        for name in ("kafka", "redis"):
            pid = self._pid(name)
            if pid is None:
                continue
            stop_process_group(pid, timeout)
            (self.root / name / "pid").unlink(missing_ok=True)

    def kill(self, name: str) -> None:
        """SIGKILL one service, keeping its data: how the chaos tests and benchmark crash it."""
        pid = self._pid(name)
        if pid is None:
            return
        kill_process_group(pid)
        (self.root / name / "pid").unlink(missing_ok=True)

    def start(self, name: str, timeout: float = 90.0) -> None:
        """Start one service again on its old data (after `kill`), and wait until it answers."""
        if name == "kafka":
            if self._pid("kafka") is None:
                self._start_kafka()
            self._wait_kafka(timeout)
        elif name == "redis":
            if self._pid("redis") is None:
                self._start_redis()
            self._wait_redis(timeout)
        else:
            raise ValueError(f"unknown service {name!r}")

    def status(self) -> list[ServiceStatus]:
        kafka_pid, redis_pid = self._pid("kafka"), self._pid("redis")
        return [
            ServiceStatus(
                name="kafka",
                running=kafka_pid is not None and port_open(self.settings.kafka_port),
                pid=kafka_pid,
                address=self.bootstrap_servers,
                log_file=str(self.root / "kafka" / "kafka.log"),
                data_dir=str(self.root / "kafka" / "data"),
            ),
            ServiceStatus(
                name="redis",
                running=redis_pid is not None and port_open(self.settings.redis_port),
                pid=redis_pid,
                address=self.redis_url,
                log_file=str(self.root / "redis" / "redis.log"),
                data_dir=str(self.root / "redis"),
            ),
        ]

    def status_dicts(self) -> list[dict[str, object]]:
        return [asdict(s) for s in self.status()]
