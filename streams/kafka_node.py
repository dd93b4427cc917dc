"""One dev Kafka node (KRaft broker and controller in one JVM): its config, storage and command.

A single node keeps the config the dev stack always had: a one-voter quorum formatted
`--standalone`. Several nodes form a static quorum of all of them. Behind a proxy, a node
listens for clients on one port and advertises the proxy's, while replication and transaction
markers use a listener of their own that no proxy sees: a network fault hits the clients'
connections only, as a faulty client network would.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import uuid
from pathlib import Path

from streams.devlayout import HOST, BrokerNode, Layout
from streams.kafka_dist import kafka_libs
from streams.settings import DevSettings

COMMON = """\
controller.listener.names=CONTROLLER
log.dirs={log_dir}
num.partitions=1
default.replication.factor={replicas}
min.insync.replicas={min_isr}
offsets.topic.replication.factor={replicas}
offsets.topic.num.partitions=10
transaction.state.log.replication.factor={replicas}
transaction.state.log.min.isr={min_isr}
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor={replicas}
share.coordinator.state.topic.min.isr={min_isr}
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


class KafkaNodeError(RuntimeError):
    pass


def server_properties(node: BrokerNode, layout: Layout, log_dir: Path) -> str:
    lines = ["process.roles=broker,controller", f"node.id={node.node_id}"]
    if len(layout.brokers) == 1:
        lines.append(f"controller.quorum.bootstrap.servers={HOST}:{node.controller_port}")
    else:
        voters = ",".join(f"{b.node_id}@{HOST}:{b.controller_port}" for b in layout.brokers)
        lines.append(f"controller.quorum.voters={voters}")
    controller = f"CONTROLLER://{HOST}:{node.controller_port}"
    if node.internal_port:
        internal = f"INTERNAL://{HOST}:{node.internal_port}"
        lines += [
            f"listeners=PLAINTEXT://{HOST}:{node.port},{internal},{controller}",
            f"advertised.listeners=PLAINTEXT://{node.address},{internal}",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT",
            "inter.broker.listener.name=INTERNAL",
        ]
    else:
        lines += [
            f"listeners=PLAINTEXT://{HOST}:{node.port},{controller}",
            f"advertised.listeners=PLAINTEXT://{node.address}",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "inter.broker.listener.name=PLAINTEXT",
        ]
    replicas, min_isr = layout.replication
    return "\n".join(lines) + "\n" + COMMON.format(log_dir=log_dir, replicas=replicas, min_isr=min_isr)


def java_command(settings: DevSettings, kdir: Path) -> list[str]:
    libs = kafka_libs(settings.kafka_version, settings.log4j_version)
    return [
        shutil.which("java") or "java",
        f"-Xmx{settings.kafka_heap}",
        f"-Xms{settings.kafka_heap}",
        "-XX:+UseG1GC",
        "-XX:TieredStopAtLevel=1",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={kdir / 'log4j2.yaml'}",
        f"-Dkafka.logs.dir={kdir}",
        "-cp",
        f"{libs}/*",
    ]


def new_cluster_id() -> str:
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()


def prepare(
    node: BrokerNode, layout: Layout, settings: DevSettings, kdir: Path, cluster_id: str
) -> list[str]:
    """Write the node's config, format its storage on first start; returns its command line."""
    props = kdir / "server.properties"
    props.write_text(server_properties(node, layout, kdir / "data"))
    (kdir / "log4j2.yaml").write_text(LOG4J2)
    base = java_command(settings, kdir)
    if not (kdir / "data" / "meta.properties").exists():
        # One argument for the id: ids may start with '-'. A static quorum needs no --standalone.
        standalone = ["--standalone"] if len(layout.brokers) == 1 else []
        fmt = subprocess.run(
            [
                *base,
                "kafka.tools.StorageTool",
                "format",
                *standalone,
                f"--cluster-id={cluster_id}",
                "-c",
                str(props),
            ],  # fmt: skip
            capture_output=True,
            text=True,
        )
        if fmt.returncode != 0:
            raise KafkaNodeError(f"formatting Kafka storage failed:\n{fmt.stdout}\n{fmt.stderr}")
    return [*base, "kafka.Kafka", str(props)]
