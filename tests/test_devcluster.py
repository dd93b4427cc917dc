"""The dev stack's two new shapes: brokers behind Toxiproxy (what the chaos benchmark runs on)
and a three-broker KRaft cluster (`sightline dev up --brokers 3`).

Behind the proxy, no client may learn an address that goes around it, and a `timeout` toxic on
the broker -> client direction must drop replies while requests still land: that is how the
chaos benchmark makes a write whose outcome the client cannot know. The cluster must create
topics with replication 3 and min.insync.replicas 2 and keep serving with one broker dead.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from sightline.bench.chaos_faults import FAULTS, default_faults, make_faults
from sightline.config import SightlineConfig
from streams.devinfra import DevStack, free_port
from streams.devlayout import Layout
from streams.kafka_node import server_properties
from streams.settings import DevSettings
from streams.topics import ensure_topics


def settings(data_dir: Path) -> DevSettings:
    return DevSettings(kafka_port=free_port(), kafka_controller_port=free_port(), redis_port=free_port(),
                       data_dir=data_dir)  # fmt: skip


def test_a_proxied_node_advertises_the_proxy_and_replicates_past_it(tmp_path: Path) -> None:
    layout = Layout.new(settings(tmp_path), brokers=3, proxied=True)
    node = layout.brokers[1]
    props = dict(line.split("=", 1) for line in server_properties(node, layout, tmp_path).splitlines())
    assert props["advertised.listeners"].split(",")[0] == f"PLAINTEXT://127.0.0.1:{node.advertised_port}"
    assert node.advertised_port != node.port
    assert props["inter.broker.listener.name"] == "INTERNAL"
    assert (props["default.replication.factor"], props["min.insync.replicas"]) == ("3", "2")
    assert props["controller.quorum.voters"].count("@") == 3
    assert {p.name for p in layout.proxies()} == {"kafka", "kafka-2", "kafka-3", "redis"}
    layout.save(tmp_path / "layout.json")
    assert Layout.load(tmp_path / "layout.json") == layout


def test_the_fault_catalogue_has_the_network_and_cluster_faults() -> None:
    assert len(FAULTS) >= 14 and len(default_faults(3)) == len(FAULTS) + 2
    assert [f.outage_s for f in make_faults(["kafka-pause", "kafka-pause-long"], None)] == [20, 35]
    with pytest.raises(ValueError, match="--brokers 3"):
        make_faults(["rolling-restart"], None, brokers=1)


def _produce(bootstrap: str, topic: str, value: bytes, timeout: float) -> tuple[Producer, list[object]]:
    acked: list[object] = []
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                         "on_delivery": lambda err, msg: acked.append(err or msg.offset())})  # fmt: skip
    producer.produce(topic, value, partition=0)
    producer.flush(timeout)
    return producer, acked


def _values(bootstrap: str, topic: str, count: int, timeout: float = 30.0) -> list[bytes]:
    """The first `count` records of partition 0 (fewer if they do not come within `timeout`)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    values: list[bytes] = []
    deadline = time.monotonic() + timeout
    while len(values) < count and time.monotonic() < deadline:
        values += [m.value() or b"" for m in consumer.consume(count - len(values), 1.0) if m.error() is None]
    consumer.close()
    return values


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[DevStack]:
    dev = DevStack(settings(tmp_path / "stack"), proxied=True)
    dev.up()
    try:
        yield dev
    finally:
        dev.down()


@pytest.mark.infra
def test_behind_the_proxy_replies_can_be_dropped_while_writes_land_or_delayed(proxied: DevStack) -> None:
    node = proxied.nodes[0]
    metadata = AdminClient({"bootstrap.servers": proxied.bootstrap_servers}).list_topics(timeout=10)
    assert [(b.host, b.port) for b in metadata.brokers.values()] == [("127.0.0.1", node.advertised_port)]
    topic = f"proxied-{uuid.uuid4().hex[:6]}"
    admin = AdminClient({"bootstrap.servers": proxied.bootstrap_servers})
    admin.create_topics([NewTopic(topic, 1)])[topic].result(30)
    producer, acked = _produce(proxied.bootstrap_servers, topic, b"before", 15)
    assert acked == [0]

    toxiproxy = proxied.toxiproxy
    toxiproxy.add_toxic(node.service, "timeout", "downstream", timeout=0)
    producer.produce(topic, b"unknown outcome", partition=0)
    producer.flush(4)
    assert len(acked) == 1, "a reply got through the blackhole"
    # Past the proxy (the listener replication uses), the write is there: the request landed.
    direct = f"127.0.0.1:{node.internal_port}"
    assert _values(direct, topic, 2) == [b"before", b"unknown outcome"]

    toxiproxy.remove_toxic(node.service, "timeout_downstream")  # closes the blackholed connections
    producer.flush(60)
    assert acked[1] == 1, "the retried write must be acked at its first offset (idempotence)"
    assert _values(proxied.bootstrap_servers, topic, 3, timeout=5) == [b"before", b"unknown outcome"]

    toxiproxy.add_toxic(node.service, "latency", "downstream", latency=1500)
    started = time.monotonic()
    producer.produce(topic, b"late", partition=0)
    producer.flush(30)
    assert acked[2:] == [2] and time.monotonic() - started >= 1.5, "the reply was not delayed"
    toxiproxy.remove_toxic(node.service, "latency_downstream")


@pytest.mark.infra
@pytest.mark.chaos
def test_three_brokers_replicate_three_ways_and_serve_with_one_dead(tmp_path: Path) -> None:
    dev = DevStack(settings(tmp_path / "cluster"), brokers=3)
    try:
        statuses = dev.up(timeout=180)
        assert [s.name for s in statuses if s.running] == ["kafka", "kafka-2", "kafka-3", "redis"]
        config = SightlineConfig(kafka={"bootstrap_servers": dev.bootstrap_servers})
        topic = config.topics.frames.name
        ensure_topics(config)
        admin = AdminClient({"bootstrap.servers": dev.bootstrap_servers})
        partitions = admin.list_topics(topic, timeout=10).topics[topic].partitions.values()
        assert {len(p.replicas) for p in partitions} == {3}
        resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
        assert admin.describe_configs([resource])[resource].result(10)["min.insync.replicas"].value == "2"

        dev.kill("kafka-2")
        _, acked = _produce(dev.bootstrap_servers, topic, b"two of three", 60)
        assert acked == [0], "acks=all with min.insync.replicas 2 must succeed on two brokers"
        assert _values(dev.bootstrap_servers, topic, 1) == [b"two of three"]
        assert {s.name: s.running for s in DevStack(dev.settings).status()}["kafka-2"] is False
    finally:
        dev.down()
    assert not any(s.running for s in DevStack(dev.settings).status())
