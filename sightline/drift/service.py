"""`run_drift`: frames and detections topics in, drift gauges and `drift` alerts out.

The drift consumer group reads every frame (its own group, so it never takes frames from the
inference workers). State is in memory: after a restart each camera builds a fresh baseline.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from confluent_kafka import Message
from prometheus_client import Counter, Gauge

from schemas.alert import AlertRecord, TimeWindow, alert_id
from schemas.detections import DetectionsRecord
from schemas.errors import ContractError
from schemas.frame import parse_frame_headers
from sightline.config import SightlineConfig
from sightline.drift.features import CLASS_MIX, gray, image_stats, output_stats
from sightline.drift.monitor import DriftEvent, DriftMonitor
from streams.claimcheck import ClaimCheckStore
from streams.kafka import make_consumer, make_producer

log = logging.getLogger(__name__)

SCORE = Gauge(
    "sightline_drift_score",
    "Drift score per camera and feature: KS statistic (numeric features) or PSI (class_mix)",
    ["camera", "feature"],
)
ALERTS = Counter("sightline_drift_alerts_total", "Drift alerts raised", ["camera", "feature"])
SKIPPED = Counter("sightline_drift_skipped_total", "Records the drift monitor could not use", ["topic"])
COMMIT_EVERY_S = 5.0


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
        self.claims = ClaimCheckStore(config.redis.url, config.frames.claim_check_ttl_s)
        self.consumer = make_consumer(config.kafka, config.drift.group_id, "sightline-drift")
        self.producer = make_producer(config.kafka, "sightline-drift")

    def _frame(self, msg: Message) -> None:
        meta = parse_frame_headers(msg.key(), msg.headers())
        payload = self.claims.get(meta.claim_check) if meta.claim_check else (msg.value() or b"")
        try:
            stats = image_stats(gray(payload, self.config.drift.decode_scale))
        except ValueError as exc:
            raise ContractError(f"undecodable frame: {exc}") from None
        self.stats.frames += 1
        self._publish(self.monitor.add(meta.camera_id, meta.capture_ns, stats))

    def _detections(self, msg: Message) -> None:
        record = DetectionsRecord.decode(msg.value() or b"")
        values, classes = output_stats(record)
        self.stats.detections += 1
        self._publish(self.monitor.add(record.camera_id, record.capture_ns, {**values, CLASS_MIX: classes}))

    def _publish(self, events: list[DriftEvent]) -> None:
        for event in events:
            alert = drift_alert(event, self.config.drift.severity)
            log.warning("drift: %s", alert.summary)
            self.producer.produce(
                self.config.topics.alerts.name, key=alert.camera_id.encode(), value=alert.encode()
            )
            ALERTS.labels(event.camera_id, event.feature).inc()
            self.stats.alerts += 1

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
                    if msg.error() is not None:
                        log.warning("drift consumer: %s", msg.error())
                        continue
                    try:
                        handlers[msg.topic()](msg)
                    except ContractError as exc:
                        SKIPPED.labels(msg.topic()).inc()
                        log.debug("drift: skipping %s@%d: %s", msg.topic(), msg.offset(), exc)
                    self.consumer.store_offsets(msg)
                    last_msg = time.monotonic()
                self._export()
                self.producer.poll(0)
                if time.monotonic() - last_commit > COMMIT_EVERY_S:
                    self._commit()
                    last_commit = time.monotonic()
                idle = time.monotonic() - max(last_msg, assigned[0] if assigned else float("inf"))
                if max_idle_s is not None and assigned and not msgs and idle > max_idle_s:
                    break
        finally:
            self.producer.flush(30)
            self._commit()
            self.consumer.close()
            self.claims.close()
        return self.stats

    def _commit(self) -> None:
        try:
            self.consumer.commit(asynchronous=False)
        except Exception as exc:  # noqa: BLE001 - nothing stored yet, or a rebalance: next time
            log.debug("drift commit: %s", exc)


def run_drift(
    config: SightlineConfig, stop: threading.Event | None = None, *, max_idle_s: float | None = None
) -> DriftStats:
    """Run until `stop` is set (or nothing arrived for `max_idle_s`); alerts are flushed on exit."""
    return DriftService(config, stop).run(max_idle_s)
