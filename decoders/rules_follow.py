"""Takes a camera's reference frame again when its rules are saved (a new rules version).

The `moved` check compares the picture with how the camera looked when its rules were drawn: a
line or zone drawn on the frame is only right for that view. So when the version in force on
the rules topic changes a camera's block (any change: a re-drawn line is a re-aimed camera as
far as the rules know), the camera's reference is cleared and its decoder takes the next good
frame. Which rules each reference belongs to is kept in Redis beside it (a digest of the
camera's block), so a decoder that was down while rules were saved retakes it when it starts.
The rules document is only a mapping here (`schemas/rules_version.py`): the decoder does not
know the alert processors' rules model, and needs none.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import uuid
from collections.abc import Iterable
from typing import Any

from confluent_kafka import Consumer, KafkaException

from decoders.reference import REDIS_ERRORS, ReferenceStore
from schemas.errors import ContractError
from schemas.rules_version import RulesVersionRecord
from streams import topic_reader
from streams.kafka import consumer_config
from streams.settings import StreamsConfig

log = logging.getLogger(__name__)


def camera_digest(document: dict[str, Any] | None, camera: str) -> str:
    """A digest of `camera`'s block in a rules document ("-" when it has none)."""
    cameras = (document or {}).get("cameras") or []
    block = next((c for c in cameras if isinstance(c, dict) and c.get("camera") == camera), None)
    if block is None:
        return "-"
    return hashlib.sha256(json.dumps(block, sort_keys=True).encode()).hexdigest()[:16]


class RulesFollower:
    """Reads the rules topic from where it left off; clears references whose rules changed."""

    def __init__(self, config: StreamsConfig, cameras: Iterable[str], store: ReferenceStore) -> None:
        self.topic = config.topics.rules.name
        self.cameras = sorted(set(cameras))
        self.store = store
        group = f"sightline-decoder-rules-{uuid.uuid4().hex[:8]}"  # never committed: no group state
        self._consumer = Consumer(
            {**consumer_config(config.kafka, group, "sightline-decoder-rules"), "enable.partition.eof": True}
        )
        self._next = 0
        self._seen: dict[int, RulesVersionRecord] = {}  # the first record of each version wins
        self._primed = False

    def poll_once(self) -> list[str]:
        """Read what is new; returns the cameras whose reference was cleared."""
        try:
            for msg in topic_reader.read_topic(self._consumer, self.topic, partitions=[0], start=self._next):
                self._next = (msg.offset() or 0) + 1
                try:
                    record = RulesVersionRecord.decode(msg.value() or b"")
                except ContractError:
                    continue  # the processors log it; a bad write changes no reference
                self._seen.setdefault(record.version, record)
        except topic_reader.TopicMissing:
            pass  # nothing saved yet: the rules file is in force
        latest = self._seen[max(self._seen)].rules if self._seen else None
        changed = self.store.rules_changed
        cleared = [c for c in self.cameras if changed(c, camera_digest(latest, c), self._primed)]
        self._primed = True
        for camera in cleared:
            log.info("camera %s: rules saved; its reference frame is taken again", camera)
        return cleared

    def close(self) -> None:
        self._consumer.close()

    def run(self, stop: threading.Event, every_s: float) -> None:
        """Until `stop`: a lost Kafka or Redis only delays a retake to the next round."""
        try:
            while True:
                try:
                    self.poll_once()
                except (KafkaException, topic_reader.TopicReadError, *REDIS_ERRORS) as exc:
                    log.debug("rules topic not followed this round: %s", exc)
                if stop.wait(every_s):
                    return
        finally:
            self.close()
