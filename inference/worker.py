"""The inference worker: frames topic in, detections topic out, in micro-batches.

Stages overlap so the model rarely waits on I/O: the consumer thread fetches records and
hands JPEG decoding (and claim-check reads) to a thread pool as they arrive. In
at-least-once mode a model thread runs one batch while the next is being filled, and
offsets are committed only after Kafka acknowledged the detections for those frames. In
exactly-once mode each batch is one Kafka transaction (detections, dead letters and the
consumed offsets), run on the consumer thread between polls.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import socket
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import supervision as sv
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer

from inference import metrics
from inference.batching import Batch, FrameJob, Rejected
from inference.commits import OffsetCommits
from inference.detector import Detector
from inference.frames import load_image
from inference.hotswap import PromotedDetector
from inference.kafka_health import KafkaWatch
from inference.registry import ModelRegistry
from inference.tracker_state import TrackerStateStore
from inference.tracking import CameraTrackers
from inference.wire import to_wire
from schemas.dead_letter import dead_letter_headers
from schemas.errors import ContractError
from schemas.frame import parse_frame_headers
from sightline.config import SightlineConfig
from streams.claimcheck import ClaimCheckStore, ClaimCheckUnavailable
from streams.health import Health
from streams.kafka import consumer_config, producer_config

log = logging.getLogger(__name__)


class WorkerError(RuntimeError):
    """A failure after which committing would risk losing frames: the worker stops instead."""


@dataclass
class WorkerStats:
    frames: int = 0
    records: int = 0
    dead_letters: int = 0
    batches: int = 0
    first_fetch: float | None = None  # monotonic time of the first frame, for throughput figures
    last_ack: float | None = None  # monotonic time of the last acknowledged detections record
    frame_ages_ms: deque[float] = field(default_factory=lambda: deque(maxlen=200_000))


class DetectorSource:
    """The model to run: the registry's promoted version (hot-swapped) or a pinned one."""

    def __init__(self, config: SightlineConfig, detector: Detector | None = None) -> None:
        self._fixed = detector
        self._owned = detector is None
        self._promoted: PromotedDetector | None = None
        if detector is None:
            inf = config.inference
            registry = ModelRegistry(inf.registry_dir)
            kind = engine_kind(config)
            options: dict[str, Any] = {
                "engine_options": {} if kind == "tensorrt" else {"threads": inf.threads},
                "score_threshold": inf.score_threshold,
                "nms_iou": inf.nms_iou,
                "max_batch": inf.max_batch,
            }
            if inf.model_version:
                manifest, path = registry.load(inf.model, inf.model_version)
                self._fixed = Detector.from_path(path, manifest, kind, **options)
            else:
                self._promoted = PromotedDetector(
                    registry, inf.model, engine=kind, poll_s=inf.model_poll_s, **options
                )

    def current(self) -> Detector:
        if self._promoted is not None:
            return self._promoted.current()
        assert self._fixed is not None
        return self._fixed

    def close(self) -> None:
        """Close what we built; a detector handed in belongs to the caller."""
        if self._promoted is not None:
            self._promoted.close()
        elif self._fixed is not None and self._owned:
            self._fixed.close()


def engine_kind(config: SightlineConfig) -> str:
    inf = config.inference
    if inf.engine == "tensorrt":
        return "tensorrt"  # native TensorRT engine
    return {"cpu": "cpu", "cuda": "cuda", "tensorrt": "ort-tensorrt"}[inf.provider]


class InferenceWorker:
    def __init__(
        self,
        config: SightlineConfig,
        *,
        detector: Detector | None = None,
        worker_id: str | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.config = config
        inf = config.inference
        self.exactly_once = inf.delivery == "exactly-once"
        named = worker_id or os.environ.get("SIGHTLINE_WORKER_ID")
        self.worker_id = named or socket.gethostname()
        self.stop = stop or threading.Event()
        self.stats = WorkerStats()
        self.health = Health("inference")
        self.commits = OffsetCommits(self.health)
        self.paused = False  # at-least-once back-pressure: partitions paused while acks lag
        self.kafka = KafkaWatch(self.health, config.topics.frames.name, transactional=self.exactly_once)
        self.detectors = DetectorSource(config, detector)
        self.trackers = CameraTrackers(enabled=inf.tracking, frame_rate=10.0)
        # Tracker snapshots on a compacted topic, so tracks survive restarts and rebalances.
        self.tracker_state = TrackerStateStore(
            config, self.trackers, client_id=f"sightline-inference-{self.worker_id}-tracker-state"
        )
        self.claims = ClaimCheckStore(
            config.redis.url, config.frames.claim_check_ttl_s, health=self.health, stop=self.stop
        )
        self.known_cameras = {c.id for c in config.cameras}
        self.decode_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="jpeg")
        self.batches: queue.Queue[Batch | None] = queue.Queue(maxsize=2)
        self.in_flight: deque[Batch] = deque()
        self.open_batch: Batch | None = None
        self.fatal: BaseException | None = None

        client = f"sightline-inference-{self.worker_id}"
        # transactional.id must be unique per live process: a named worker (--worker-id, e.g. a
        # StatefulSet ordinal) keeps its id across restarts, so the restarted twin fences the dead
        # one and aborts its open transaction at once; an unnamed one adds its pid, and the short
        # transaction timeout bounds how long a dead twin's transaction blocks readers.
        txn_id = f"{inf.group_id}-{named or f'{self.worker_id}-{os.getpid()}'}" if self.exactly_once else None
        pconf = producer_config(config.kafka, client, compression="lz4", linger_ms=2, transactional_id=txn_id)
        pconf["error_cb"] = self.kafka.on_producer_error
        if txn_id:
            pconf["transaction.timeout.ms"] = 10_000
            pconf["delivery.timeout.ms"] = 10_000
        else:
            pconf["delivery.timeout.ms"] = 0  # at-least-once: wait out any outage, never drop a record
        self._producer_config = pconf
        self.producer = Producer(pconf)
        cconf = consumer_config(config.kafka, inf.group_id, client, read_committed=True)
        cconf["max.poll.interval.ms"] = 300_000
        cconf["error_cb"] = self.kafka.on_error
        cconf["on_commit"] = self.commits.on_commit
        self.consumer = Consumer(cconf)
        if self.exactly_once:
            self._init_transactions()

    # -- Kafka health --------------------------------------------------------------------
    def _check_kafka(self) -> None:
        reason = self.kafka.check(self.consumer)
        if reason is not None:
            raise WorkerError(reason)

    def _watch_producer(self, done: threading.Event) -> None:
        """Exactly-once: serve the producer's events off the consumer thread.

        Transactional calls block the consumer thread for seconds while Kafka is away, and
        librdkafka reports errors only from poll: without this, /readyz would say "up" all along.
        """
        while not done.wait(0.5):
            self.producer.poll(0)

    def _init_transactions(self) -> None:
        while True:
            try:
                self.producer.init_transactions(10)
                return
            except KafkaException as exc:
                err = exc.args[0]
                if not err.retriable() or self.stop.is_set():
                    raise WorkerError(f"cannot start the transactional producer: {err}") from exc
                self.health.degraded("kafka", f"init_transactions: {err}")

    # -- consumer side -------------------------------------------------------------------
    def _accept(self, msg: Message, batch: Batch) -> None:
        batch.track(msg)
        metrics.FRAMES_IN.labels(_camera_label(msg)).inc()
        try:
            meta = parse_frame_headers(msg.key(), msg.headers())
            reject_unknown = self.config.inference.reject_unknown_cameras and self.known_cameras
            if reject_unknown and meta.camera_id not in self.known_cameras:
                raise ContractError(f"unknown camera {meta.camera_id!r}")
            size, limit = len(msg.value() or b""), self.config.frames.max_frame_bytes
            if meta.claim_check is None and size > limit:
                raise ContractError(f"oversized frame: {size} bytes > limit {limit}")
        except ContractError as exc:
            batch.rejected.append(Rejected(msg, exc.reason))
            return
        frames = self.config.frames
        future = self.decode_pool.submit(
            load_image, msg, meta, self.claims, frames.max_frame_bytes, frames.max_pixels
        )
        batch.jobs.append(FrameJob(msg, meta, time.monotonic(), future))

    def _close_batch(self) -> None:
        batch, self.open_batch = self.open_batch, None
        if batch is None or batch.is_empty():
            return
        self.in_flight.append(batch)
        if self.exactly_once:
            # Transactions run on the consumer thread, between polls: the group generation
            # sent with the offsets is then always the current one, and a rebalance can
            # never interleave with an open transaction.
            try:
                self._run_batch(batch)
            except KafkaException as exc:
                self._abort_and_rewind(batch, exc)
            except ClaimCheckUnavailable:
                self._abort_and_rewind(batch, None)  # stopping while Redis is down: nothing committed
            return
        while True:
            self._check_fatal()
            try:
                self.batches.put(batch, timeout=0.05)
                return
            except queue.Full:
                self._service()

    def _service(self) -> None:
        """Serve delivery reports and commit every finished batch, oldest first."""
        self.producer.poll(0)
        while self.in_flight and self.in_flight[0].done.is_set():
            batch = self.in_flight.popleft()
            if batch.error is not None:
                if self.stop.is_set():  # stopping mid-outage: leave it uncommitted, it is read again
                    self.in_flight.clear()
                    return
                raise WorkerError(f"batch failed, not committing: {batch.error}")
            if not self.exactly_once:
                self.health.ok("kafka")  # its records were acknowledged
                self.commits.commit(self.consumer, batch.offsets())
        self._apply_backpressure()

    def _apply_backpressure(self) -> None:
        """At-least-once: pause fetching while too many batches (and their images) await acks."""
        if self.exactly_once:
            return
        full = len(self.in_flight) >= self.config.inference.max_in_flight_batches
        if full == self.paused:
            return
        try:
            assignment = self.consumer.assignment()
            (self.consumer.pause if full else self.consumer.resume)(assignment)
        except KafkaException as exc:
            log.warning("could not %s partitions: %s", "pause" if full else "resume", exc)
            return
        self.paused = full

    def _check_fatal(self) -> None:
        if self.fatal is not None:
            raise WorkerError(f"model thread failed: {self.fatal!r}") from self.fatal

    def _drain(self) -> None:
        """Finish everything fetched so far and commit it (used on revoke and shutdown).

        Bounded: with Kafka away, what is not acknowledged in time stays uncommitted (read again).
        """
        self._close_batch()
        kafka_up = self.health.is_up("kafka")
        deadline = time.monotonic() + (30.0 if kafka_up else 3.0)
        while self.in_flight:
            self._check_fatal()
            if time.monotonic() > deadline:
                log.warning("%d batches not acknowledged in time; left uncommitted", len(self.in_flight))
                self.in_flight.clear()
                break
            self.producer.poll(0.02)
            self._service()
        if not self.exactly_once:
            self.commits.commit_final(self.consumer, asynchronous=not self.health.is_up("kafka"))

    def _abort_and_rewind(self, batch: Batch, exc: KafkaException | None) -> None:
        """Abort the batch's transaction and re-read its frames.

        A fatal producer error (fenced, epoch bumped after a timeout) gets a fresh producer with
        the same transactional.id; a stop request leaves the transaction to time out (or to be
        aborted by the restarted twin) instead of waiting for a broker that may be away.
        """
        if batch in self.in_flight:
            self.in_flight.remove(batch)
        if exc is not None:  # a transaction had begun
            self.trackers.rollback()  # the batch's tracker updates are undone with it
        error = exc.args[0] if exc is not None else None
        if self.stop.is_set():
            log.warning("stopping with an unfinished transaction (%s); it is not committed", error)
            return
        log.warning("transaction aborted (%s); re-reading the batch", error)
        if error is not None and (error.fatal() or not error.txn_requires_abort()):
            # Fenced, or timed out while Kafka was away: librdkafka's transaction state after a
            # timed-out call is not to be trusted (a later send_offsets_to_transaction can hang), so
            # start afresh; init_transactions with the same id aborts the open transaction.
            self.health.degraded("kafka", f"transaction: {error}")
            self._new_producer(error)
        else:
            self._abort_transaction()
        for tp in batch.start_offsets():
            try:
                self.consumer.seek(tp)
            except KafkaException as seek_error:  # no longer ours: the next owner starts from the commit
                log.info("not rewinding %s[%d]: %s", tp.topic, tp.partition, seek_error)

    def _abort_transaction(self) -> None:
        """Abort; if Kafka does not answer, a new producer with the same id fences and aborts it."""
        for _ in range(3):
            if self.stop.is_set():
                return
            try:
                self.producer.abort_transaction(10)
                return
            except KafkaException as exc:
                err = exc.args[0]
                log.info("abort_transaction failed: %s", err)
                if err.fatal():
                    break
                self.health.degraded("kafka", f"abort_transaction: {err}")
        self._new_producer(err)

    def _new_producer(self, error: KafkaError) -> None:
        log.warning("transactional producer unusable (%s); starting a new one", error)
        old, self.producer = self.producer, Producer(self._producer_config)
        # Destroying a producer can wait on a broker that is away: the last reference goes on
        # another thread (Thread.run drops its args when done).
        threading.Thread(target=Producer.purge, args=(old,), name="retire-producer", daemon=True).start()
        del old
        self._init_transactions()

    def _on_lost(self, consumer: Consumer, partitions: list) -> None:
        """Partitions taken away without a rebalance (session timed out, e.g. a broker outage).

        Another worker may own them already: drop in-flight work without committing; their
        frames are read again from the committed offsets by whoever owns them now.
        """
        log.warning(
            "partitions lost: %s; dropping in-flight work uncommitted", [p.partition for p in partitions]
        )
        self.open_batch = None
        self.in_flight.clear()
        self.commits.forget()

    def _on_revoke(self, consumer: Consumer, partitions: list) -> None:
        log.info("partitions revoked: %s; finishing in-flight batches", [p.partition for p in partitions])
        self._drain()
        self.commits.forget(partitions)

    def _on_assign(self, consumer: Consumer, partitions: list) -> None:
        log.info("partitions assigned: %s", [p.partition for p in partitions])
        self.kafka.topic_found()
        # librdkafka keeps a partition paused across lost/revoked and re-assigned, and the
        # back-pressure may have reset `paused` in between (on an empty assignment): always start
        # the new assignment fetching; the back-pressure pauses it again if acks still lag.
        try:
            consumer.resume(partitions)
        except KafkaException as exc:
            log.warning("could not resume the new partitions: %s", exc)
        self.paused = False
        self.tracker_state.restore(p.partition for p in partitions)  # before any of their frames
        self._last_activity = time.monotonic()

    # -- model side ----------------------------------------------------------------------
    def _model_loop(self) -> None:
        batch: Batch | None = None
        try:
            while True:
                batch = self.batches.get()
                if batch is None:
                    return
                self._run_batch(batch)
        except BaseException as exc:  # noqa: BLE001 - surfaced to the consumer thread, which stops
            if isinstance(exc, ClaimCheckUnavailable) and self.stop.is_set():
                log.warning("stopping while Redis is down: the batch stays uncommitted")
            else:
                log.exception("model thread failed")
                self.fatal = exc
            if batch is not None:
                batch.fail(repr(exc))
            while True:  # unblock the consumer thread, which may wait to hand over a batch
                try:
                    self.batches.get_nowait()
                except queue.Empty:
                    return

    def _run_batch(self, batch: Batch) -> None:
        good: list[FrameJob] = []
        images = []
        for job in batch.jobs:
            try:
                images.append(job.image.result())
                good.append(job)
            except ContractError as exc:
                batch.rejected.append(Rejected(job.msg, exc.reason))
        detector = self.detectors.current()
        started = time.monotonic()
        results, timings = detector.detect(images) if images else ([], None)
        images.clear()  # drop the decoded pixels now: batches may wait a while for acks
        for job in batch.jobs:
            job.image = None
        if self.exactly_once:
            self.trackers.begin()  # undo log, rolled back by _abort_and_rewind
            self.producer.begin_transaction()
        produced_ns = time.time_ns()
        for job, detections in zip(good, results, strict=True):
            tracked = self.trackers.update(
                job.meta.camera_id,
                detections,
                job.meta.stream_ts,
                seq=job.meta.seq,
                partition=job.msg.partition(),
                offset=job.msg.offset(),
            )
            self._produce(batch, self._record(job, tracked, detector, timings, started, produced_ns), job)
        # One tracker snapshot per camera, in the batch's transaction in exactly-once mode.
        self.tracker_state.publish(
            self.producer, [(j.meta.camera_id, j.msg.partition()) for j in good], batch
        )
        for rejected in batch.rejected:
            self._dead_letter(batch, rejected)
        if timings is not None:
            metrics.BATCH_SIZE.observe(len(good))
            metrics.PREPROCESS_SECONDS.observe(timings.preprocess_ms / 1e3)
            metrics.INFERENCE_SECONDS.observe(timings.inference_ms / 1e3)
        self.stats.batches += 1
        if self.exactly_once:
            self._commit_transaction(batch)
        batch.seal()

    def _commit_transaction(self, batch: Batch) -> None:
        """Offsets into the transaction, then commit. Any failure (even a retriable timeout while
        Kafka is away) aborts and re-reads the batch: retrying in place never polls the consumer,
        so a worker that lost its group could not rejoin."""
        group = self.consumer.consumer_group_metadata()
        send_offsets_with_deadline(self.producer, batch.offsets(), group, timeout_s=10)
        self.producer.commit_transaction(10)
        self.health.ok("kafka")

    def _record(
        self,
        job: FrameJob,
        detections: sv.Detections,
        detector: Detector,
        timings: Any,
        started: float,
        produced_ns: int,
    ) -> bytes:
        wire = to_wire(detections)
        if wire["tracker_id"] is None:
            wire["tracker_id"] = [None] * len(detections)
        labels = detector.manifest.labels
        if any(name is None for name in wire["class_name"]):
            wire["class_name"] = [labels[c] if 0 <= c < len(labels) else str(c) for c in wire["class_id"]]
        msg, meta = job.msg, job.meta
        record = {
            "schema_version": 1,
            "camera_id": meta.camera_id,
            "seq": meta.seq,
            "capture_ns": meta.capture_ns,
            "stream_ts": meta.stream_ts,
            "width": meta.width,
            "height": meta.height,
            "frame": {
                "topic": msg.topic(),
                "partition": msg.partition(),
                "offset": msg.offset(),
                "claim_check": meta.claim_check,
            },
            "model": {"name": detector.manifest.name, "version": detector.manifest.version},
            "timing": {
                "queue_ms": round(max(0.0, started - job.fetched) * 1e3, 3),
                "preprocess_ms": round(timings.preprocess_ms, 3),
                "inference_ms": round(timings.inference_ms, 3),
                "batch_size": timings.batch_size,
            },
            "produced_ns": produced_ns,
            "detections": wire,
        }
        metrics.QUEUE_SECONDS.observe(max(0.0, started - job.fetched))
        return json.dumps(record, separators=(",", ":")).encode()

    def _produce(self, batch: Batch, value: bytes, job: FrameJob) -> None:
        meta = job.meta
        headers = [
            ("schema-version", b"1"),
            ("camera-id", meta.camera_id.encode()),
            ("seq", str(meta.seq).encode()),
            ("content-type", b"application/json"),
        ]
        error = self._send(
            batch,
            self.config.topics.detections.name,
            meta.camera_id.encode(),
            value,
            headers,
            partial(self._on_delivered, batch, meta.camera_id, meta.capture_ns),
        )
        if error is not None:
            self._dead_letter(batch, Rejected(job.msg, f"detections record not produced: {error}"))
            return
        self.stats.records += 1

    def _dead_letter(self, batch: Batch, rejected: Rejected) -> None:
        msg = rejected.msg
        log.warning(
            "dead-lettering %s[%d]@%d: %.500s", msg.topic(), msg.partition(), msg.offset(), rejected.reason
        )
        metrics.DEAD_LETTERS.labels(rejected.reason.split(":")[0][:40]).inc()
        claim_check = next((v for k, v in msg.headers() or () if k == "claim-check" and v), None)
        if claim_check:  # keep the parked image past its TTL, so the dead letter can be replayed
            self.claims.keep(claim_check.decode("utf-8", "replace"))
        value, reason = msg.value(), rejected.reason
        room = self.config.kafka.message_max_bytes - 64 * 1024  # headers and record overhead
        if value and len(value) > room:  # it would be refused again on every restart: keep the reason
            reason, value = (
                f"{reason}; value of {len(value)} bytes dropped (over the record size limit)",
                None,
            )
        while True:
            headers = dead_letter_headers(
                msg.headers(), reason, "inference", msg.topic(), msg.partition(), msg.offset()
            )
            topic = self.config.topics.dead_letter.name
            error = self._send(batch, topic, msg.key(), value, headers, partial(self._on_dlq, batch))
            if error is None:
                self.stats.dead_letters += 1
                return
            if not value:  # a poison record must never stop the worker: log it and move on
                log.error(
                    "could not dead-letter %s[%d]@%d: %s", msg.topic(), msg.partition(), msg.offset(), error
                )
                return
            reason = f"{rejected.reason}; value of {len(value)} bytes dropped: {error}"
            value = None

    def _send(
        self, batch: Batch, topic: str, key: bytes | None, value: bytes | None, headers: list, callback: Any
    ) -> KafkaException | None:
        """Produce one record for `batch`; a record Kafka refuses (too large, ...) is returned."""
        batch.expect_delivery()
        while True:
            try:
                self.producer.produce(topic, key=key, value=value, headers=headers, on_delivery=callback)
                return None
            except BufferError:
                self.producer.poll(0.05)
            except KafkaException as exc:
                batch.delivered(None)  # no delivery report will come for it
                return exc

    def _on_delivered(
        self, batch: Batch, camera: str, capture_ns: int, err: KafkaError | None, _msg: Message
    ) -> None:
        if err is None:
            age_s = max(0.0, (time.time_ns() - capture_ns) / 1e9)
            metrics.DETECTIONS_OUT.labels(camera).inc()
            metrics.FRAME_AGE_SECONDS.observe(age_s)
            self.stats.frame_ages_ms.append(age_s * 1e3)
            self.stats.last_ack = time.monotonic()
        batch.delivered(err)

    def _on_dlq(self, batch: Batch, err: KafkaError | None, _msg: Message) -> None:
        batch.delivered(err)

    def _idle_for(self, max_idle_s: float | None) -> bool:
        """True once nothing arrived for `max_idle_s` after partitions were assigned."""
        since = self._last_activity
        if max_idle_s is None or since is None or self.in_flight or not self.health.is_up("kafka"):
            return False
        return time.monotonic() - since > max_idle_s

    # -- main loop -----------------------------------------------------------------------
    def run(self, max_idle_s: float | None = None) -> WorkerStats:
        """Consume until `stop` is set (or nothing arrives for `max_idle_s`)."""
        inf = self.config.inference
        model_thread = threading.Thread(target=self._model_loop, name="model", daemon=True)
        model_thread.start()
        watching = threading.Event()
        if self.exactly_once:
            threading.Thread(
                target=self._watch_producer, args=(watching,), name="kafka-watch", daemon=True
            ).start()
        self.consumer.subscribe(
            [self.config.topics.frames.name],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        metrics.MODEL_INFO.labels(inf.model, self.detectors.current().manifest.version).set(1)
        self._last_activity: float | None = None  # idle time only counts once partitions are assigned
        try:
            while not self.stop.is_set():
                self._check_fatal()
                self._check_kafka()
                now = time.monotonic()
                if self.open_batch is not None:
                    wait = max(0.0, inf.max_wait_ms / 1e3 - (now - self.open_batch.opened))
                else:
                    wait = 0.1
                room = inf.max_batch - (len(self.open_batch.jobs) if self.open_batch else 0)
                msgs = self.consumer.consume(num_messages=max(1, room), timeout=wait)
                for msg in msgs:
                    if msg.error() is not None:
                        self.kafka.on_error(msg.error())
                        continue
                    if self.open_batch is None:
                        self.open_batch = Batch(opened=time.monotonic())
                    self._accept(msg, self.open_batch)
                    self.stats.frames += 1
                    self._last_activity = time.monotonic()
                    if self.stats.first_fetch is None:
                        self.stats.first_fetch = self._last_activity
                batch = self.open_batch
                if batch is not None and (
                    len(batch.jobs) >= inf.max_batch or batch.age_ms() >= inf.max_wait_ms
                ):
                    self._close_batch()
                self._service()
                if self._idle_for(max_idle_s):
                    break
            self._drain()
        finally:
            while True:  # the model thread may be gone: never block on a full queue here
                try:
                    self.batches.put(None, timeout=0.1)
                    break
                except queue.Full:
                    if not model_thread.is_alive():
                        break
            model_thread.join(timeout=60)
            watching.set()
            self.consumer.close()
            # With Kafka away, unacknowledged records are uncommitted work: don't wait long for them.
            self.producer.flush(30 if self.health.is_up("kafka") else 1)
            self.decode_pool.shutdown(wait=False, cancel_futures=True)
            self.claims.close()
            self.detectors.close()
        return self.stats


def send_offsets_with_deadline(
    producer: Producer, offsets: list, group: Any, timeout_s: float, grace_s: float = 5.0
) -> None:
    """`send_offsets_to_transaction`, which must not outlive its timeout.

    librdkafka ignores the timeout of this call while the group coordinator is away (issue
    confluentinc/librdkafka#5456, open in 2.16): after a broker restart it could block the
    worker forever. The call runs on a thread of its own; past the deadline the producer is
    reported unusable (a fatal error), so the caller starts a new one with the same
    transactional.id, which fences the stuck one and aborts its transaction.
    """
    outcome: list[BaseException | None] = []

    def call() -> None:
        try:
            producer.send_offsets_to_transaction(offsets, group, timeout_s)
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            outcome.append(exc)

    thread = threading.Thread(target=call, name="send-offsets", daemon=True)
    thread.start()
    thread.join(timeout_s + grace_s)
    if not outcome:
        reason = f"send_offsets_to_transaction still blocked after {timeout_s + grace_s:.0f}s"
        raise KafkaException(KafkaError(KafkaError._TIMED_OUT, reason, fatal=True))
    if outcome[0] is not None:
        raise outcome[0]


def _camera_label(msg: Message) -> str:
    key = msg.key()
    return key.decode("utf-8", "replace")[:64] if key else "?"
