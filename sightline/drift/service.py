"""`run_drift`: frames and detections topics in, drift gauges and `drift` alerts out.

The drift consumer group reads every frame (its own group, so it never takes frames from the
inference workers). State is in memory: after a restart each camera builds a fresh baseline.

Kafka and Redis outages are ridden out, not fatal: claim checks are re-read with backoff until
Redis answers, librdkafka reconnects to the broker by itself, alerts whose delivery failed are
produced again, and offsets are committed only once every alert before them is delivered. While
a dependency is down, `Health("drift")` says so (gauge, /readyz, one log line per change).
Errors that waiting cannot fix (a missing topic, authorization) end the run with that error.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import redis
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer
from prometheus_client import Counter, Gauge

from schemas.alert import AlertRecord, TimeWindow, alert_id
from schemas.detections import DetectionsRecord
from schemas.errors import ContractError
from schemas.frame import parse_frame_headers
from sightline.config import SightlineConfig
from sightline.drift.features import CLASS_MIX, gray, image_stats, output_stats
from sightline.drift.monitor import DriftEvent, DriftMonitor
from streams.claimcheck import ClaimCheckStore
from streams.health import Health
from streams.kafka import blocking_consumer_config, is_fatal_error, producer_config
from streams.kafka_probe import KafkaBackProbe
from streams.retry import call_with_retry

log = logging.getLogger(__name__)

SCORE = Gauge(
    "sightline_drift_score",
    "Drift score per camera and feature: KS statistic (numeric features) or PSI (class_mix)",
    ["camera", "feature"],
)
ALERTS = Counter("sightline_drift_alerts_total", "Drift alerts raised", ["camera", "feature"])
SKIPPED = Counter("sightline_drift_skipped_total", "Records the drift monitor could not use", ["topic"])
COMMIT_EVERY_S = 5.0
PROBE_EVERY_S = 1.0  # while Kafka is down: how often to ask whether it is back
REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError)


@dataclass
class DriftStats:
    frames: int = 0
    detections: int = 0
    alerts: int = 0


def drift_alert(event: DriftEvent, severity: str, now_ns: int | None = None) -> AlertRecord:
    """The alert for a drift event; its id depends only on the input, so replays dedupe."""
    detail = ""
    if event.baseline_mean is not None and event.recent_mean is not None:
        detail = f" (mean {event.baseline_mean:.4g} -> {event.recent_mean:.4g})"
    return AlertRecord(
        alert_id=alert_id("drift", event.camera_id, event.feature, event.window_start_ns),
        type="drift",
        severity=severity,  # type: ignore[arg-type]
        camera_id=event.camera_id,
        rule=f"drift:{event.feature}",
        window=TimeWindow(start_ns=event.window_start_ns, end_ns=event.window_end_ns),
        capture_ns=event.window_end_ns,
        created_ns=now_ns or time.time_ns(),
        summary=f"{event.feature} drifted on {event.camera_id}: score {event.score:.2f} "
        f">= {event.threshold:g}, shift {event.shift:.0%}{detail}",
        evidence={
            "feature": event.feature,
            "score": event.score,
            "shift": event.shift,
            "threshold": event.threshold,
            "baseline": {"start_ns": event.baseline_start_ns, "end_ns": event.baseline_end_ns},
            "baseline_mean": event.baseline_mean,
            "recent_mean": event.recent_mean,
        },
    )


class DriftService:
    def __init__(self, config: SightlineConfig, stop: threading.Event | None = None) -> None:
        self.config = config
        self.stop = stop or threading.Event()
        self.monitor = DriftMonitor(config.drift)
        self.stats = DriftStats()
        self.health = Health("drift")
        self.claims = ClaimCheckStore(config.redis.url, config.frames.claim_check_ttl_s)
        # The loop may block on Redis for as long as an outage lasts (up to minutes): stay in the group.
        consumer_conf = blocking_consumer_config(config.kafka, config.drift.group_id, "sightline-drift")
        consumer_conf["error_cb"] = self._client_error
        self.consumer = Consumer(consumer_conf)
        self.producer = Producer(
            {**producer_config(config.kafka, "sightline-drift"), "error_cb": self._client_error}
        )
        self._redo: list[tuple[bytes | None, bytes]] = []  # alerts whose delivery failed: produce again
        self._kafka_back = KafkaBackProbe(
            self.health, self.consumer, config.topics.frames.name, every_s=PROBE_EVERY_S, timeout_s=2
        )

    def _client_error(self, err: KafkaError) -> None:
        if err.code() == KafkaError._ALL_BROKERS_DOWN:
            self.health.degraded("kafka", err.str())
        elif err.fatal():
            log.error("drift: fatal Kafka client error: %s", err)
        else:
            log.debug("drift: kafka: %s", err)

    def _claimed(self, key: str) -> bytes:
        return call_with_retry(
            lambda: self.claims.get(key),
            health=self.health,
            dependency="redis",
            retry_on=REDIS_ERRORS,
            stop=self.stop,
        )

    def _frame(self, msg: Message) -> None:
        meta = parse_frame_headers(msg.key(), msg.headers())
        payload = self._claimed(meta.claim_check) if meta.claim_check else (msg.value() or b"")
        try:
            stats = image_stats(gray(payload, self.config.drift.decode_scale))
        except ValueError as exc:
            raise ContractError(f"undecodable frame: {exc}") from None
        self.stats.frames += 1
        self._publish(self.monitor.add(meta.camera_id, meta.capture_ns, stats))

    def _detections(self, msg: Message) -> None:
        record = DetectionsRecord.decode(msg.value() or b"")
        if record.skipped is not None:  # not seen: an empty frame would read as "fewer detections"
            return
        values, classes = output_stats(record)
        self.stats.detections += 1
        self._publish(self.monitor.add(record.camera_id, record.capture_ns, {**values, CLASS_MIX: classes}))

    def _publish(self, events: list[DriftEvent]) -> None:
        for event in events:
            alert = drift_alert(event, self.config.drift.severity)
            log.warning("drift: %s", alert.summary)
            self._produce(alert.camera_id.encode(), alert.encode())
            ALERTS.labels(event.camera_id, event.feature).inc()
            self.stats.alerts += 1

    def _produce(self, key: bytes | None, value: bytes) -> None:
        self.producer.produce(
            self.config.topics.alerts.name, key=key, value=value, on_delivery=self._delivered
        )

    def _delivered(self, err: KafkaError | None, msg: Message) -> None:
        if err is None:
            return
        if is_fatal_error(err) or err.code() == KafkaError.MSG_SIZE_TOO_LARGE:
            raise KafkaException(err)
        log.debug("drift: alert delivery failed, producing it again: %s", err)
        self._redo.append((msg.key(), msg.value() or b""))

    def _produce_again(self) -> None:
        redo, self._redo = self._redo, []
        for key, value in redo:
            self._produce(key, value)

    def _export(self) -> None:
        for (camera, feature), score in self.monitor.scores().items():
            SCORE.labels(camera, feature).set(score)

    def run(self, max_idle_s: float | None = None) -> DriftStats:
        topics = self.config.topics
        handlers = {topics.frames.name: self._frame, topics.detections.name: self._detections}
        # Idle time only counts once partitions are assigned: joining the group can take seconds.
        assigned: list[float] = []
        self.consumer.subscribe(list(handlers), on_assign=lambda _c, _p: assigned.append(time.monotonic()))
        last_msg = last_commit = time.monotonic()
        try:
            while not self.stop.is_set():
                msgs = self.consumer.consume(200, 0.2)
                for msg in msgs:
                    if self.stop.is_set():
                        break  # not handled, not stored: read again after a restart
                    err = msg.error()
                    if err is not None:
                        if is_fatal_error(err):
                            log.error("drift: %s; stopping", err)
                            raise KafkaException(err)
                        log.debug("drift consumer: %s", err)
                        continue
                    try:
                        handlers[msg.topic()](msg)
                    except ContractError as exc:
                        SKIPPED.labels(msg.topic()).inc()
                        log.debug("drift: skipping %s@%d: %s", msg.topic(), msg.offset(), exc)
                    except REDIS_ERRORS:
                        if self.stop.is_set():
                            break  # stopped while waiting for Redis: this frame is read again
                        raise
                    self._store(msg)
                    last_msg = time.monotonic()
                self._export()
                self._produce_again()
                self.producer.poll(0)
                self._kafka_back.poll()
                # Offsets advance only past frames whose alerts were all delivered.
                outstanding = len(self.producer) or self._redo
                if not outstanding and time.monotonic() - last_commit > COMMIT_EVERY_S:
                    self._commit()
                    last_commit = time.monotonic()
                idle = time.monotonic() - max(last_msg, assigned[0] if assigned else float("inf"))
                if max_idle_s is not None and assigned and not msgs and idle > max_idle_s:
                    break
        finally:
            if self.producer.flush(30) == 0 and not self._redo:
                self._commit(asynchronous=False)
            self.consumer.close()
            self.claims.close()
        return self.stats

    def _store(self, msg: Message) -> None:
        try:
            self.consumer.store_offsets(msg)
        except KafkaException as exc:  # the partition moved away (e.g. during an outage)
            log.debug("drift: offset not stored: %s", exc)

    def _commit(self, asynchronous: bool = True) -> None:
        try:
            self.consumer.commit(asynchronous=asynchronous)
        except KafkaException as exc:  # nothing stored yet, broker away, a rebalance: next time
            log.debug("drift commit: %s", exc)


def run_drift(
    config: SightlineConfig, stop: threading.Event | None = None, *, max_idle_s: float | None = None
) -> DriftStats:
    """Run until `stop` is set (or nothing arrived for `max_idle_s`); alerts are flushed on exit."""
    return DriftService(config, stop).run(max_idle_s)
