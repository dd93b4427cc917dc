"""Which delivery strategy a worker runs, and the producer it gets: a separate module so the
worker does not carry both configurations."""

from __future__ import annotations

import os
from collections.abc import Callable

from confluent_kafka import Producer

from inference.at_least_once import AtLeastOnce
from inference.commits import OffsetCommits
from inference.exactly_once import ExactlyOnce
from inference.kafka_health import KafkaWatch
from inference.outbox import Outbox
from inference.parts import WorkerParts
from inference.settings import WorkerConfig
from streams.kafka import at_least_once_producer_config, transactional_producer_config


def make_delivery(
    config: WorkerConfig,
    parts: WorkerParts,
    outbox: Outbox,
    kafka: KafkaWatch,
    commits: OffsetCommits,
    client: str,
    named: str | None,
    worker_id: str,
    rewind: Callable[[dict[tuple[str, int], int] | None], None],
) -> AtLeastOnce | ExactlyOnce:
    inf = config.inference
    if inf.delivery != "exactly-once":
        pconf = at_least_once_producer_config(config.kafka, client, compression="lz4", linger_ms=2)
        pconf["error_cb"] = kafka.on_producer_error
        return AtLeastOnce(parts, outbox, Producer(pconf), commits)
    # transactional.id must be unique per live process: a named worker (--worker-id, e.g. a
    # StatefulSet ordinal) keeps its id across restarts, so the restarted twin fences the
    # dead one and aborts its open transaction at once; an unnamed one adds its pid, and the
    # short transaction timeout bounds how long a dead twin's transaction blocks readers.
    txn_id = f"{inf.group_id}-{named or f'{worker_id}-{os.getpid()}'}"
    pconf = transactional_producer_config(config.kafka, client, txn_id, compression="lz4", linger_ms=2)
    pconf["error_cb"] = kafka.on_producer_error
    return ExactlyOnce(  # raises TransactionsUnavailable where the broker has no transactions
        parts,
        outbox,
        pconf,
        interval_s=inf.transaction_interval_ms / 1e3,
        max_pending=max(1, inf.max_in_flight_batches // 2),
        rewind=rewind,
    )
