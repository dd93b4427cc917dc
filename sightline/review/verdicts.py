"""The API's view of the feedback topic: the latest verdict per alert, kept up to date.

A thread follows the topic from its beginning (assign, no group: every API process sees every
verdict). A verdict given through this process is set at once as well, so the page that gave it
shows it without waiting for the round trip.
"""

from __future__ import annotations

import logging
import threading
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from schemas.errors import ContractError
from schemas.feedback import FeedbackRecord
from sightline.review.feedback import latest
from streams.kafka import consumer_config
from streams.settings import KafkaSettings
from streams.topic_reader import TopicReadError, partitions_of

log = logging.getLogger(__name__)


class VerdictView(threading.Thread):
    def __init__(self, kafka: KafkaSettings, topic: str) -> None:
        super().__init__(name="api-verdicts", daemon=True)
        self.kafka, self.topic = kafka, topic
        self.lock = threading.Lock()
        self.verdicts: dict[str, FeedbackRecord] = {}
        self.stop_event = threading.Event()

    def get(self, alert_id: str) -> FeedbackRecord | None:
        with self.lock:
            return self.verdicts.get(alert_id)

    def set(self, record: FeedbackRecord) -> None:
        """A verdict this process just published: the newest on the topic as far as it knows."""
        with self.lock:
            latest(self.verdicts, record)

    def stop(self) -> None:
        self.stop_event.set()

    def run(self) -> None:
        group = f"sightline-api-verdicts-{uuid.uuid4().hex[:8]}"
        consumer = Consumer(consumer_config(self.kafka, group, "sightline-api"))
        try:
            while not self.stop_event.is_set():  # until the topic exists
                try:
                    parts = partitions_of(consumer, self.topic, timeout_s=5)
                    consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in parts])
                    break
                except (TopicReadError, KafkaException) as exc:
                    log.debug("api verdicts: %s", exc)
                    self.stop_event.wait(2.0)
            while not self.stop_event.is_set():
                for msg in consumer.consume(500, 0.5):
                    if msg.error() is not None:
                        log.debug("api verdicts: %s", msg.error())
                        continue
                    try:
                        record = FeedbackRecord.decode(msg.value() or b"")
                    except ContractError:
                        continue
                    with self.lock:
                        latest(self.verdicts, record)
        finally:
            consumer.close()
