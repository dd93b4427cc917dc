"""streams.kafka_probe against a real broker and a port where none listens."""

from __future__ import annotations

import time

from confluent_kafka.admin import AdminClient

from streams.devinfra import free_port
from streams.health import Health
from streams.kafka_probe import KafkaBackProbe, kafka_unreachable
from tests.conftest import Stack


def _admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 1000, "log_level": 0})


def test_a_running_broker_is_reachable_and_a_closed_port_says_why(stack: Stack) -> None:
    assert kafka_unreachable(_admin(stack.config.kafka.bootstrap_servers), timeout_s=5) is None
    started = time.monotonic()
    why = kafka_unreachable(_admin(f"127.0.0.1:{free_port()}"), timeout_s=1)
    assert why and time.monotonic() - started < 5, why


def test_the_back_probe_marks_kafka_up_once_it_answers_and_asks_at_most_every_interval(stack: Stack) -> None:
    health = Health("kafka-probe-test")
    health.degraded("kafka", "broker gone")
    away = KafkaBackProbe(health, _admin(f"127.0.0.1:{free_port()}"), every_s=60, timeout_s=0.5)
    away.poll()
    assert not health.is_up("kafka")
    started = time.monotonic()
    away.poll()  # within the interval: no second request
    assert time.monotonic() - started < 0.2
    KafkaBackProbe(health, _admin(stack.config.kafka.bootstrap_servers), timeout_s=5).poll()
    assert health.is_up("kafka")
