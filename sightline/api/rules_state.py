"""The API's view of the saved rules versions, kept current by a thread following the rules topic.

The live view's zones and lines (`app.state.rules`, a dict the renderer reads) follow the version
in force: the thread updates that dict in place when a new version arrives. Handlers read the
catalog from here instead of re-reading the topic on every request; until the thread has read the
topic to its end once, they read it themselves.
"""

from __future__ import annotations

import logging
import threading
import uuid

from confluent_kafka import Consumer, KafkaError, TopicPartition

from alerts.rules.loader import rules_for
from alerts.rules_store import RulesStore, read_catalog
from alerts.settings import CameraRules, RulesSettings
from alerts.versions import Catalog
from schemas.errors import ContractError
from schemas.rules_version import RulesVersionRecord
from sightline.config import SightlineConfig
from streams.config_files import ConfigError
from streams.kafka import consumer_config

log = logging.getLogger(__name__)


def file_rules(config: SightlineConfig) -> RulesSettings:
    """Version 0: the configured rules file (or inline rules); none when it cannot be read."""
    try:
        return rules_for(config.alerts)
    except (ConfigError, OSError) as exc:
        log.warning("cannot read the rules file; version 0 has no rules: %s", exc)
        return RulesSettings()


class RulesState:
    def __init__(
        self, config: SightlineConfig, fallback: RulesSettings, overlays: dict[str, CameraRules]
    ) -> None:
        self.config = config
        self.store = RulesStore(config.kafka, config.topics.rules.name, fallback)
        self.overlays = overlays
        self._catalog: Catalog | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def fallback(self) -> RulesSettings:
        return self.store.fallback

    def catalog(self) -> Catalog:
        """The versions known now (blocking read of the topic when the thread has not yet)."""
        with self._lock:
            if self._catalog is not None:
                return self._catalog
        catalog, _ = read_catalog(self.config.kafka, self.store.topic)
        self._publish(catalog)
        return catalog

    def saved(self, record: RulesVersionRecord) -> None:
        """A version this API just saved: visible at once (read your writes)."""
        with self._lock:
            catalog = self._catalog
            added = catalog is not None and catalog.add(record)
        if catalog is not None and added:
            self._refresh_overlays(catalog)

    def _publish(self, catalog: Catalog) -> None:
        with self._lock:
            if self._catalog is None or catalog.latest >= self._catalog.latest:
                self._catalog = catalog
        self._refresh_overlays(catalog)

    def _refresh_overlays(self, catalog: Catalog) -> None:
        try:
            rules = catalog.rules(catalog.latest, self.fallback)
        except Exception as exc:  # noqa: BLE001 - keep drawing the previous version
            log.warning("rules version %d unusable for the overlays: %s", catalog.latest, exc)
            return
        cameras = {c.camera: c for c in rules.cameras}
        for name in [n for n in self.overlays if n not in cameras]:
            del self.overlays[name]
        self.overlays.update(cameras)

    # -- following the topic ------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="rules-follow", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._follow()
            except Exception as exc:  # noqa: BLE001 - Kafka away: retry, keep what is known
                log.warning("rules topic: %s; retrying", exc)
                self._stop.wait(2.0)

    def _follow(self) -> None:
        catalog, end = read_catalog(self.config.kafka, self.store.topic)
        self._publish(catalog)
        cfg = consumer_config(
            self.config.kafka, f"sightline-api-rules-{uuid.uuid4().hex[:8]}", "sightline-api"
        )
        consumer = Consumer(cfg)
        try:
            consumer.assign([TopicPartition(self.store.topic, 0, end)])
            while not self._stop.is_set():
                msg = consumer.poll(0.5)
                if msg is None:
                    continue
                if msg.error() is not None:
                    if msg.error().code() != KafkaError._PARTITION_EOF:
                        log.debug("rules topic: %s", msg.error().str())
                    continue
                try:
                    record = RulesVersionRecord.decode(msg.value() or b"")
                except ContractError as exc:
                    log.error("rules topic offset %d: %s; skipped", msg.offset(), exc.reason)
                    continue
                with self._lock:
                    current = self._catalog
                    added = current is not None and current.add(record)
                if current is not None and added:
                    self._refresh_overlays(current)
        finally:
            consumer.close()
