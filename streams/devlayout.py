"""Where the dev stack's services listen: one broker or several, with or without a proxy in front.

The default stack is one broker and Redis on the ports of `DevSettings`, and needs no record.
A cluster (`sightline dev up --brokers 3`) or a proxied stack (the chaos benchmark) takes free
ports for what `DevSettings` does not name, so its layout is saved beside its data: a later
`dev status`, `dev down` or restart of one broker must find the same ports.
"""

from __future__ import annotations

import json
import socket
from dataclasses import asdict, dataclass
from pathlib import Path

from streams.settings import DevSettings
from streams.toxiproxy import Proxy

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class BrokerNode:
    """One KRaft node (broker and controller in one process)."""

    node_id: int
    port: int  # the clients' listener
    controller_port: int
    advertised_port: int  # what the metadata tells clients: `port`, or the proxy's in front of it
    internal_port: int = 0  # replication and transaction markers, past the proxy (0: `port`)

    @property
    def service(self) -> str:
        """Node 1 keeps the single broker's name and folder, so `kafka` means the same everywhere."""
        return "kafka" if self.node_id == 1 else f"kafka-{self.node_id}"

    @property
    def address(self) -> str:
        return f"{HOST}:{self.advertised_port}"


@dataclass(frozen=True)
class Layout:
    brokers: tuple[BrokerNode, ...]
    redis_port: int  # redis-server's own
    redis_client_port: int  # what clients connect to: `redis_port`, or its proxy
    proxy_api_port: int = 0  # toxiproxy's HTTP API (0: no proxy)

    @property
    def proxied(self) -> bool:
        return self.proxy_api_port != 0

    @property
    def replication(self) -> tuple[int, int]:
        """(replication factor, min.insync.replicas): 3 and 2 from three brokers on, so one
        broker may be down while every write still reaches two."""
        replicas = min(len(self.brokers), 3)
        return replicas, 2 if replicas == 3 else 1

    @classmethod
    def single(cls, settings: DevSettings) -> Layout:
        node = BrokerNode(1, settings.kafka_port, settings.kafka_controller_port, settings.kafka_port)
        return cls((node,), settings.redis_port, settings.redis_port)

    @classmethod
    def new(cls, settings: DevSettings, brokers: int, proxied: bool) -> Layout:
        """Node 1 and Redis on the configured ports, everything else on free ones; when proxied,
        clients are given the proxy's ports, so none can go around it."""
        nodes = []
        for node_id in range(1, brokers + 1):
            if node_id == 1:
                port, controller = settings.kafka_port, settings.kafka_controller_port
            else:
                port, controller = free_port(), free_port()
            if proxied:
                nodes.append(BrokerNode(node_id, port, controller, free_port(), free_port()))
            else:
                nodes.append(BrokerNode(node_id, port, controller, port))
        redis_client = free_port() if proxied else settings.redis_port
        return cls(tuple(nodes), settings.redis_port, redis_client, free_port() if proxied else 0)

    def proxies(self) -> list[Proxy]:
        """The proxy of each broker (named after its service) and of Redis."""
        kafka = [Proxy(b.service, b.address, f"{HOST}:{b.port}") for b in self.brokers]
        return [*kafka, Proxy("redis", f"{HOST}:{self.redis_client_port}", f"{HOST}:{self.redis_port}")]

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, path: Path) -> Layout:
        data = json.loads(path.read_text())
        return cls(**{**data, "brokers": tuple(BrokerNode(**b) for b in data["brokers"])})
