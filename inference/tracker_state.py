"""Per-camera tracker snapshots on a compacted Kafka topic, so tracks survive restarts and rebalances.

After each batch the worker produces, for every camera the batch touched, the camera's ByteTrack
state and the last frame it covers (``seq``, frames partition and offset), keyed by camera id. In
exactly-once mode the snapshot is part of the batch's transaction, so it commits or aborts with the
detections and the consumed offsets; in at-least-once mode it is one more record the batch waits
for before its offsets are committed. Snapshot partition ``p % n`` holds the cameras of frames
partition ``p``, so only the owner of a frames partition writes its snapshots.

When frames partitions are assigned, the worker reads those snapshot partitions (read_committed,
to their end) and restores the trackers before processing anything; frames the snapshot already
covers are not fed to the tracker again (``CameraTrackers.update``'s replay guard).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from typing import Any, Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from inference.tracking import CameraTrackers
from streams.kafka import consumer_config, produce_when_room
from streams.settings import StreamsConfig

log = logging.getLogger(__name__)


class DeliveryBatch(Protocol):
    """What the store needs from a worker batch: count a record and hear its delivery report."""

    def expect_delivery(self) -> None: ...

    def delivered(self, err: KafkaError | None) -> None: ...


def encode_state(state: dict[str, Any]) -> bytes:
    return json.dumps(state, separators=(",", ":")).encode()


def decode_state(value: bytes | None) -> dict[str, Any] | None:
    """The snapshot in a record, or None for a tombstone or a value that is not a JSON object."""
    if not value:
        return None
    try:
        state = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return state if isinstance(state, dict) else None


class TrackerStateStore:
    """Writes and restores the snapshots of one worker's ``CameraTrackers``."""

    def __init__(
        self,
        config: StreamsConfig,
        trackers: CameraTrackers,
        *,
        client_id: str = "sightline-tracker-state",
        restore_timeout_s: float = 60.0,
    ) -> None:
        self.trackers = trackers
        self.topic = config.topics.tracker_state.name
        self.kafka = config.kafka
        self.group_id = f"{config.inference.group_id}-tracker-state"
        self.client_id = client_id
        self.restore_timeout_s = restore_timeout_s
        self.enabled = trackers.enabled
        self._partitions: int | None = None  # of the snapshot topic, read from the broker
        self._frames_partition: dict[str, int] = {}  # camera -> frames partition it was last seen on

    # -- write --------------------------------------------------------------------------------
    def publish(self, producer: Producer, frames: Iterable[tuple[str, int]], batch: DeliveryBatch) -> int:
        """Produce one snapshot per camera among ``frames`` ((camera id, frames partition) pairs).

        Call after the batch's tracker updates (inside its transaction in exactly-once mode).
        Returns the number of snapshots produced.
        """
        if not self.enabled:
            return 0
        cameras: dict[str, int] = {}
        for camera, frames_partition in frames:
            cameras[camera] = frames_partition
        if cameras and self._partitions is None:
            self._partitions = self._partition_count(producer)
        produced = 0
        for camera, frames_partition in cameras.items():
            if self._partitions is None:
                break
            with self.trackers.lock:
                state = self.trackers.state(camera)
                if state is None:
                    continue
                self._frames_partition[camera] = frames_partition
            state["frames_partition"] = frames_partition
            batch.expect_delivery()
            self._produce(producer, camera, encode_state(state), frames_partition % self._partitions, batch)
            produced += 1
        return produced

    def _produce(
        self, producer: Producer, camera: str, value: bytes, partition: int, batch: DeliveryBatch
    ) -> None:
        produce_when_room(
            producer,
            self.topic,
            key=camera.encode(),
            value=value,
            partition=partition,
            headers=[("content-type", b"application/json")],
            on_delivery=lambda err, _msg: batch.delivered(err),
        )

    # -- restore --------------------------------------------------------------------------------
    def restore(self, frames_partitions: Iterable[int]) -> list[str]:
        """Load the latest committed snapshot of every camera on ``frames_partitions``.

        The topic is the truth for these partitions (another worker may have moved their tracks
        on), so local trackers of those cameras are dropped first. An unreadable snapshot gives
        that camera a fresh tracker. Returns the cameras restored.
        """
        assigned = set(frames_partitions)
        if not self.enabled or not assigned:
            return []
        try:
            values = self.load(assigned)
        except (KafkaException, TimeoutError) as exc:
            log.error(
                "tracker state not restored (%s): tracks of partitions %s start afresh", exc, sorted(assigned)
            )
            values = {}
        restored = []
        with self.trackers.lock:  # a model thread must never see half a restore
            for camera, partition in list(self._frames_partition.items()):
                if partition in assigned:
                    self.trackers.reset(camera)
                    del self._frames_partition[camera]
            for camera, value in values.items():
                if self._restore_one(camera, value, assigned):
                    restored.append(camera)
        log.info(
            "restored tracker state of %d camera(s) for frames partitions %s", len(restored), sorted(assigned)
        )
        return restored

    def _restore_one(self, camera: str, value: bytes, assigned: set[int]) -> bool:
        state = decode_state(value)
        if state is None:
            log.warning("unreadable tracker snapshot for camera %r: starting fresh tracks", camera)
            return False
        if state.get("frames_partition") not in assigned:
            return False  # a camera of a frames partition another worker owns
        try:
            self.trackers.load_state(state)
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("unreadable tracker snapshot for camera %r (%s): starting fresh tracks", camera, exc)
            self.trackers.reset(camera)
            return False
        self._frames_partition[camera] = int(state["frames_partition"])
        return True

    def load(self, frames_partitions: Iterable[int]) -> dict[str, bytes]:
        """The latest committed value per camera key in the snapshot partitions of ``frames_partitions``.

        Reads read_committed up to the end (the last stable offset), so a snapshot of a transaction
        still open or aborted is never used.
        """
        conf = consumer_config(self.kafka, self.group_id, self.client_id, read_committed=True)
        conf["enable.partition.eof"] = True
        conf["fetch.wait.max.ms"] = 10  # the partitions are read once, to their end: don't linger
        consumer = Consumer(conf)
        try:
            if self._partitions is None:
                self._partitions = self._partition_count(consumer)
                if self._partitions is None:
                    return {}
            wanted = sorted({p % self._partitions for p in frames_partitions})
            # Offset 0, not OFFSET_BEGINNING (a ListOffsets round trip): if compaction removed it,
            # auto.offset.reset=earliest moves to the log start.
            consumer.assign([TopicPartition(self.topic, p, 0) for p in wanted])
            return self._read_to_end(consumer, set(wanted))
        finally:
            consumer.close()

    def _partition_count(self, client: Consumer | Producer) -> int | None:
        meta = client.list_topics(self.topic, timeout=30).topics.get(self.topic)
        if meta is None or meta.error is not None or not meta.partitions:
            log.warning(
                "tracker state topic %s is missing (%s): tracks restart on every restart or rebalance; "
                "create the topics (sightline dev up / decode) to keep them",
                self.topic,
                None if meta is None else meta.error,
            )
            self.enabled = False
            return None
        return len(meta.partitions)

    def _read_to_end(self, consumer: Consumer, pending: set[int]) -> dict[str, bytes]:
        values: dict[str, bytes] = {}
        deadline = time.monotonic() + self.restore_timeout_s
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"tracker state partitions {sorted(pending)} not read to their end")
            for msg in consumer.consume(500, 0.5):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        pending.discard(msg.partition())
                    else:
                        log.warning("tracker state read: %s", err)
                    continue
                key = msg.key()
                if key is None:
                    continue
                camera = key.decode("utf-8", "replace")
                value = msg.value()
                if value:
                    values[camera] = value
                else:
                    values.pop(camera, None)  # tombstone: the camera's state was deleted
        return values
