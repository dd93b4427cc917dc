"""A background thread tails camera-events, frames, detections and alerts into rolling state.

The API answers /v1/cameras, /v1/alerts and the live view from memory, so a page refresh never
costs a Kafka round trip. The consumer uses `assign` (no group, no commits): every API
instance sees everything, and on start it rewinds a little to have a latest frame to show.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from schemas.alert import AlertRecord
from schemas.camera_event import CameraEvent
from schemas.detections import DetectionsRecord
from schemas.errors import ContractError
from schemas.headers import headers_to_dict
from sightline.config import SightlineConfig
from streams.health import Health
from streams.kafka import consumer_config, is_fatal_error, is_missing_topic
from streams.redact import redact_text, redact_url
from streams.topic_reader import TopicMissing, partitions_of

log = logging.getLogger(__name__)

RATE_WINDOW_S = 5.0
FRAME_CACHE = 32  # frame payloads kept per camera for the live view
REWIND = {"frames": 16, "detections": 16}  # records per partition re-read on start
LAG_EVERY_S = 2.0


def is_fatal(err: KafkaError) -> bool:
    """Errors waiting will not fix; a missing topic is not one here: /readyz says so meanwhile."""
    return is_fatal_error(err) and not is_missing_topic(err)


class Rate:
    """Frames per second from capture timestamps over the last few seconds of capture time.

    Arrival times would read a rewound backlog (read at start-up in one go) or a burst after a
    stall as a high rate; capture times give the camera's real rate whatever the delivery.
    """

    def __init__(self) -> None:
        self.captures: deque[float] = deque()
        self.last_arrival = 0.0
        self.newest = 0.0

    def add(self, capture_s: float, now: float) -> None:
        self.last_arrival = now
        self.captures.append(capture_s)
        self.newest = max(self.newest, capture_s)
        while self.captures and self.captures[0] < self.newest - RATE_WINDOW_S:
            self.captures.popleft()

    def per_second(self, now: float) -> float:
        if not self.captures or now - self.last_arrival > RATE_WINDOW_S:
            return 0.0
        if len(self.captures) == 1:  # one frame in the window: all that is known is a lower bound
            return 1 / RATE_WINDOW_S
        span = max(self.captures) - min(self.captures)
        return (len(self.captures) - 1) / span if span > 0 else 0.0


@dataclass
class CameraState:
    camera_id: str
    online: bool | None = None
    last_event: dict[str, Any] | None = None
    fps_in: Rate = field(default_factory=Rate)
    fps_out: Rate = field(default_factory=Rate)
    last_capture_ns: int | None = None
    last_seen_ns: int = 0  # newest capture or event time: cameras unseen for long leave the live view
    partitions: set[int] = field(default_factory=set)
    latest: DetectionsRecord | None = None  # the newest frame the model ran on (never a skipped one)
    # Frames the worker skipped under the camera's realtime policy (seen since this process started).
    skipped: int = 0
    skipped_rate: Rate = field(default_factory=Rate)
    frames: OrderedDict[tuple[str, int, int], bytes] = field(default_factory=OrderedDict)


def _public_event(event: CameraEvent) -> dict[str, Any]:
    """The event as /v1/cameras shows it: records from before the decoder redacted are masked here."""
    data = event.model_dump()
    data["source"] = redact_url(event.source)
    if event.reason:
        data["reason"] = redact_text(event.reason, event.source)
    return data


class TailState:
    """Thread-safe rolling state shared by the tail thread and the request handlers."""

    def __init__(self, config: SightlineConfig) -> None:
        self.config = config
        self.lock = threading.Lock()
        self.cameras: dict[str, CameraState] = {c.id: CameraState(c.id) for c in config.cameras}
        self.alerts: deque[tuple[int, dict[str, Any]]] = deque(maxlen=config.api.recent_alerts)
        self.alert_seq = 0
        self.lag: dict[int, int] = {}  # frames partition -> inference group lag
        self.connected = False
        # Alert sequence numbers restart with the process: SSE ids carry this so a browser that
        # reconnects to a new process gets the backlog again instead of a wrong resume point.
        self.boot = uuid.uuid4().hex[:8]
        # Called (from the tail thread, outside the lock) with each newer detections record of a
        # camera: the live MJPEG feeds draw them.
        self.on_latest: Callable[[DetectionsRecord], None] | None = None

    def _camera(self, camera_id: str) -> CameraState:
        cam = self.cameras.get(camera_id)
        if cam is None:
            cam = self.cameras[camera_id] = CameraState(camera_id)
        return cam

    # -- updates from the tail thread ---------------------------------------------------------------
    def on_frame(self, msg: Message, now: float) -> None:
        values = headers_to_dict(msg.headers())
        camera = values.get("camera-id")
        if not camera:
            return
        with self.lock:
            cam = self._camera(camera)
            try:
                capture_ns = int(values.get("capture-ns", 0)) or int(now * 1e9)
            except ValueError:
                capture_ns = int(now * 1e9)
            cam.fps_in.add(capture_ns / 1e9, now)
            cam.partitions.add(msg.partition())
            cam.last_capture_ns = max(cam.last_capture_ns or 0, capture_ns)
            cam.last_seen_ns = max(cam.last_seen_ns, capture_ns)
            if msg.value():
                cam.frames[(msg.topic(), msg.partition(), msg.offset())] = msg.value()
                while len(cam.frames) > FRAME_CACHE:
                    cam.frames.popitem(last=False)

    def on_detections(self, record: DetectionsRecord, now: float) -> None:
        with self.lock:
            cam = self._camera(record.camera_id)
            cam.last_seen_ns = max(cam.last_seen_ns, record.capture_ns)
            if record.skipped is not None:  # not seen: nothing to draw, and no detections out
                cam.skipped += 1
                cam.skipped_rate.add(record.capture_ns / 1e9, now)
                return
            cam.fps_out.add(record.capture_ns / 1e9, now)
            newer = cam.latest is None or record.capture_ns >= cam.latest.capture_ns
            if newer:
                cam.latest = record
            if not self.config.api.tail_frames:
                cam.last_capture_ns = max(cam.last_capture_ns or 0, record.capture_ns)
        if newer and self.on_latest is not None:
            self.on_latest(record)

    def on_event(self, event: CameraEvent) -> None:
        with self.lock:
            cam = self._camera(event.camera_id)
            cam.last_seen_ns = max(cam.last_seen_ns, event.at_ns)
            if cam.last_event is None or event.at_ns >= cam.last_event["at_ns"]:
                cam.online = event.event == "online"
                cam.last_event = _public_event(event)

    def on_alert(self, alert: AlertRecord) -> None:
        with self.lock:
            self.alert_seq += 1
            self.alerts.append((self.alert_seq, alert.model_dump()))

    # -- reads from handlers ------------------------------------------------------------------------
    def cameras_view(self, hide_after_s: float | None = None) -> list[dict[str, Any]]:
        """Configured cameras first (in config order), then the others by id.

        With `hide_after_s`, cameras that are not configured and were not seen (no frame,
        detections or event captured) for that long are left out, e.g. a benchmark's cameras.
        """
        now, now_ns = time.time(), time.time_ns()
        order = {c.id: i for i, c in enumerate(self.config.cameras)}
        configured = set(order)
        with self.lock:
            out = []
            cams = sorted(
                self.cameras.values(), key=lambda c: (order.get(c.camera_id, len(order)), c.camera_id)
            )
            for cam in cams:
                stale = hide_after_s is not None and (now_ns - cam.last_seen_ns) / 1e9 > hide_after_s
                if stale and cam.camera_id not in configured:
                    continue
                lag = [self.lag[p] for p in cam.partitions if p in self.lag]
                out.append(
                    {
                        "camera_id": cam.camera_id,
                        "configured": cam.camera_id in configured,
                        "online": cam.online,
                        "last_event": cam.last_event,
                        "fps_in": round(cam.fps_in.per_second(now), 2),
                        "fps_out": round(cam.fps_out.per_second(now), 2),
                        "last_frame_age_s": (
                            round((now_ns - cam.last_capture_ns) / 1e9, 3) if cam.last_capture_ns else None
                        ),
                        # How far behind the camera the boxes shown are: capture of the newest frame
                        # the model ran on, to now (the frame age above is the decoder's side only).
                        "detections_age_s": (
                            round((now_ns - cam.latest.capture_ns) / 1e9, 3) if cam.latest else None
                        ),
                        "skipped": cam.skipped,
                        "skipped_per_s": round(cam.skipped_rate.per_second(now), 2),
                        "frames_partitions": sorted(cam.partitions),
                        "inference_lag": sum(lag) if lag else None,
                        "model": cam.latest.model.model_dump() if cam.latest else None,
                        "last_seq": cam.latest.seq if cam.latest else None,
                    }
                )
            return out

    def recent_alerts(
        self, camera: str | None = None, type_: str | None = None, limit: int = 50, after: int = 0
    ) -> list[tuple[int, dict[str, Any]]]:
        """Newest first; `after` keeps only alerts with a higher sequence number (for SSE)."""
        with self.lock:
            items = list(self.alerts)
        out = []
        for seq, alert in reversed(items):
            if seq <= after:
                break
            if camera and alert["camera_id"] != camera:
                continue
            if type_ and alert["type"] != type_:
                continue
            out.append((seq, alert))
            if len(out) >= limit:
                break
        return out

    def latest(self, camera_id: str) -> tuple[DetectionsRecord | None, bytes | None]:
        """Latest detections record of a camera and its frame bytes if still cached."""
        with self.lock:
            cam = self.cameras.get(camera_id)
            if cam is None or cam.latest is None:
                return None, None
            ref = cam.latest.frame
            return cam.latest, cam.frames.get((ref.topic, ref.partition, ref.offset))

    def knows(self, camera_id: str) -> bool:
        """Configured, or seen on any tailed topic."""
        with self.lock:
            return camera_id in self.cameras

    def cached_frame(self, record: DetectionsRecord) -> bytes | None:
        """The frame payload a detections record refers to, if the tail still holds it."""
        ref = record.frame
        with self.lock:
            cam = self.cameras.get(record.camera_id)
            return cam.frames.get((ref.topic, ref.partition, ref.offset)) if cam else None


class TailConsumer(threading.Thread):
    """Feeds `TailState`; waits for missing topics and rides out broker outages in place.

    The consumer is built and assigned once: librdkafka reconnects by itself after an outage and
    the consumer goes on from its own positions, so nothing is skipped or read twice. A missing
    topic makes `/readyz` say so (the `tail` dependency) until it exists; a fatal error
    (authorization, a fatal client error) stops the tail and leaves `tail` down with the reason.
    """

    def __init__(self, config: SightlineConfig, state: TailState, health: Health) -> None:
        super().__init__(name="api-tail", daemon=True)
        self.config, self.state, self.health = config, state, health
        self.stop_event = threading.Event()
        topics = config.topics
        self.kinds = {
            topics.camera_events.name: "events",
            topics.detections.name: "detections",
            topics.alerts.name: "alerts",
        }
        if config.api.tail_frames:
            self.kinds[topics.frames.name] = "frames"

    def stop(self) -> None:
        self.stop_event.set()

    def _consumer(self, group: str) -> Consumer:
        conf = consumer_config(self.config.kafka, group, "sightline-api", read_committed=True)
        conf["enable.partition.eof"] = False
        return Consumer(conf)

    def _assign(self, consumer: Consumer) -> None:
        """Raises `TopicMissing` until every tailed topic exists."""
        assignment = []
        for topic, kind in self.kinds.items():
            for p in partitions_of(consumer, topic, timeout_s=5):
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5)
                back = self.config.api.recent_alerts if kind == "alerts" else REWIND.get(kind, 0)
                start = low if kind == "events" else max(low, high - back)
                assignment.append(TopicPartition(topic, p, start))
        consumer.assign(assignment)

    def run(self) -> None:
        consumer = self._consumer(f"sightline-api-tail-{uuid.uuid4().hex[:12]}")
        lag_consumer = self._consumer(self.config.inference.group_id)
        try:
            self._tail(consumer, lag_consumer)
        finally:
            self.state.connected = False
            consumer.close()
            lag_consumer.close()

    def _tail(self, consumer: Consumer, lag_consumer: Consumer) -> None:
        # Assigned once; until then retried every couple of seconds. Only a missing topic marks
        # `tail` down: a broker error here (an outage, or a new topic's leader not elected yet) is
        # the `kafka` check's business, and flipping readiness on a transient one would be noise.
        # Hand-written rather than `call_with_retry`, which marks its dependency down on any retry.
        while True:
            try:
                self._assign(consumer)
                break
            except TopicMissing as exc:
                self.health.degraded("tail", str(exc))
            except KafkaException as exc:
                log.debug("api tail: cannot assign yet: %s", exc)
            if self.stop_event.wait(2.0):
                return
        self.health.ok("tail")
        self.state.connected = True
        last_lag = 0.0
        while not self.stop_event.is_set():
            for msg in consumer.consume(500, 0.2):
                err = msg.error()
                if err is None:
                    self._dispatch(msg)
                elif is_fatal(err):
                    log.error("api tail: fatal consumer error, the tail stops: %s", err)
                    self.health.degraded("tail", f"fatal: {err.str()}")
                    return
                else:  # transient (broker restarting, ...): librdkafka retries by itself
                    log.debug("api tail: %s", err)
            if time.monotonic() - last_lag > LAG_EVERY_S:
                last_lag = time.monotonic()
                try:
                    self._update_lag(lag_consumer)
                except KafkaException as exc:  # the probe reports the outage; lag is stale meanwhile
                    log.debug("api tail: lag not updated: %s", exc)

    def _dispatch(self, msg: Message) -> None:
        kind = self.kinds.get(msg.topic())
        now = time.time()
        try:
            if kind == "frames":
                self.state.on_frame(msg, now)
            elif kind == "detections":
                self.state.on_detections(DetectionsRecord.decode(msg.value()), now)
            elif kind == "events":
                self.state.on_event(CameraEvent.decode(msg.value()))
            elif kind == "alerts":
                self.state.on_alert(AlertRecord.decode(msg.value()))
        except (ContractError, json.JSONDecodeError, TypeError) as exc:
            log.debug("api tail: skipping %s[%d]@%d: %s", msg.topic(), msg.partition(), msg.offset(), exc)

    def _update_lag(self, lag_consumer: Consumer) -> None:
        """Inference group lag per frames partition: high watermark minus committed offset."""
        topic = self.config.topics.frames.name
        meta = lag_consumer.list_topics(topic, timeout=5).topics.get(topic)
        if meta is None or not meta.partitions:
            return
        tps = [TopicPartition(topic, p) for p in meta.partitions]
        committed = lag_consumer.committed(tps, timeout=5)
        lag = {}
        for tp in committed:
            low, high = lag_consumer.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=5)
            position = tp.offset if tp.offset >= 0 else low
            lag[tp.partition] = max(0, high - position)
        with self.state.lock:
            self.state.lag = lag
