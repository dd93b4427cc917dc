"""The inference worker: frames topic in, detections topic out, in micro-batches.

The consumer thread fetches records, checks their headers and hands JPEG decoding (and
claim-check reads) to a thread pool as they arrive; closed batches go through the staged
pipeline (prepare -> engine -> finish, inference/pipeline.py) and come back, in order, to the
consumer thread, where a delivery strategy publishes them: at-least-once commits offsets after
Kafka acknowledged the detections (inference/at_least_once.py), exactly-once groups finished
batches into transactions (inference/exactly_once.py). Records are built in inference/outbox.py.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor

from confluent_kafka import Consumer, KafkaException, Message, Producer, TopicPartition

from inference import metrics
from inference.at_least_once import DeliveryFailed
from inference.batching import Batch, FrameJob, Rejected, SkippedFrame
from inference.commits import OffsetCommits
from inference.delivery_setup import make_delivery
from inference.detector import Detector
from inference.detector_source import DetectorSource
from inference.exactly_once import TransactionsUnavailable
from inference.frames import accept_frame_record, frame_payload, load_image
from inference.freshness import FreshnessPolicy
from inference.gpu_jpeg import batch_jpeg_decoder
from inference.kafka_health import KafkaWatch
from inference.outbox import Outbox
from inference.parts import WorkerParts, WorkerStats
from inference.pipeline import StagedPipeline
from inference.preprocess import BufferPool
from inference.settings import WorkerConfig
from inference.tracker_state import TrackerStateStore
from inference.tracking import CameraTrackers
from schemas.errors import ContractError
from streams.claimcheck import ClaimCheckStore
from streams.health import Health
from streams.kafka import (
    worker_consumer_config,
)

__all__ = ["InferenceWorker", "WorkerError"]

log = logging.getLogger(__name__)

# While batches are inside the pipeline the consumer wakes at least this often to publish the
# finished ones (a Kafka poll cannot be interrupted by another thread).
_FINISHED_POLL_S = 0.003


class WorkerError(RuntimeError):
    """A failure after which committing would risk losing frames: the worker stops instead."""


class InferenceWorker:
    """One consumer-group member: owns the consumer, the open batch, the batches in flight and the
    delivery strategy, all on the thread that calls ``run``; the pipeline's stages, the JPEG pool
    and librdkafka run on their own threads and hand results back to it."""

    def __init__(
        self,
        config: WorkerConfig,
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
        self.paused = False  # back-pressure: partitions paused while too many batches are in flight
        self.kafka = KafkaWatch(self.health, config.topics.frames.name, transactional=self.exactly_once)
        self.detectors = DetectorSource(config, detector)
        self.trackers = CameraTrackers(
            enabled=inf.tracking, idle_ttl_s=inf.tracker_idle_ttl_s, frame_rate=10.0
        )
        self._next_eviction = 0.0
        # Tracker snapshots on a compacted topic, so tracks survive restarts and rebalances.
        self.tracker_state = TrackerStateStore(
            config, self.trackers, client_id=f"sightline-inference-{self.worker_id}-tracker-state"
        )
        self.claims = ClaimCheckStore(
            config.redis.url, config.frames.claim_check_ttl_s, health=self.health, stop=self.stop
        )
        self.known_cameras = {c.id for c in config.cameras}
        self.freshness = FreshnessPolicy(
            config.cameras, unknown=inf.unknown_camera_freshness, default_max_age_ms=inf.max_frame_age_ms
        )
        self.decode_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="jpeg")
        self.in_flight: deque[Batch] = deque()  # handed to the pipeline, not yet committed
        self.open_batch: Batch | None = None
        self._last_activity: float | None = None  # idle time only counts once partitions are assigned
        # Partitions taken away (revoked or lost) so far: a fetch that straddles one is stale.
        self._revocations = 0
        self._failed = False  # run() is ending on an error: the closing drain commits as if stopping

        client = f"sightline-inference-{self.worker_id}"
        cconf = worker_consumer_config(config.kafka, inf.group_id, client)
        cconf["error_cb"] = self.kafka.on_error
        commits = OffsetCommits(self.health)  # at-least-once: exactly-once commits in transactions
        if not self.exactly_once:
            cconf["on_commit"] = commits.on_commit  # async commit outcomes are only seen here
        self.consumer = Consumer(cconf)
        parts = WorkerParts(
            consumer=self.consumer,
            trackers=self.trackers,
            tracker_state=self.tracker_state,
            claims=self.claims,
            health=self.health,
            stop=self.stop,
            stats=self.stats,
            in_flight=self.in_flight,
            on_ack=self._on_ack,
        )
        self.outbox = Outbox(
            parts,
            detections_topic=config.topics.detections.name,
            dead_letter_topic=config.topics.dead_letter.name,
            message_max_bytes=config.kafka.message_max_bytes,
        )
        try:
            self.delivery = make_delivery(
                config, parts, self.outbox, self.kafka, commits, client, named, self.worker_id, self._rewind
            )
        except TransactionsUnavailable as exc:
            raise WorkerError(str(exc)) from exc
        self.frame_pool = BufferPool(keep=4 * inf.max_batch)
        self.gpu_decode = batch_jpeg_decoder(inf.jpeg_decoder, inf.device_id)
        self.pipeline = StagedPipeline(
            self.detectors.current,
            self.stop,
            frame_pool=self.frame_pool,
            gpu_decode=self.gpu_decode,
            stale=self.freshness.check,
            depth=inf.pipeline_depth,
        )

    @property
    def producer(self) -> Producer:
        return self.delivery.producer

    # -- consumer side -------------------------------------------------------------------
    def _accept(self, msg: Message, batch: Batch) -> None:
        batch.track(msg)
        metrics.FRAMES_IN.labels(_camera_label(msg)).inc()
        frames = self.config.frames
        try:
            meta = accept_frame_record(
                msg.key(),
                msg.value(),
                msg.headers(),
                max_bytes=frames.max_frame_bytes,
                known_cameras=self.known_cameras if self.config.inference.reject_unknown_cameras else (),
            )
        except ContractError as exc:
            batch.rejected.append(Rejected(msg, exc.reason))
            return
        now_ns = time.time_ns()
        metrics.CAMERA_FRAME_AGE.labels(meta.camera_id).set(max(0, now_ns - meta.capture_ns) / 1e9)
        skipped = self.freshness.check(meta, now_ns)
        if skipped is not None:  # never decoded: catching up costs a record, not a model run
            batch.skipped.append(SkippedFrame(msg, meta, skipped))
            return
        if self.gpu_decode is not None and meta.encoding == "jpeg":  # decoded a batch at a time
            future = self.decode_pool.submit(
                frame_payload, msg, meta, self.claims, frames.max_frame_bytes, frames.max_pixels
            )
            batch.jobs.append(FrameJob(msg, meta, time.monotonic(), future))
            return
        # Decode no larger than the model will see (libjpeg-turbo's DCT scaling does the rest).
        min_size = self.detectors.latest.decode_size(meta.width, meta.height)
        future = self.decode_pool.submit(
            load_image,
            msg,
            meta,
            self.claims,
            frames.max_frame_bytes,
            frames.max_pixels,
            min_size,
            self.frame_pool,
        )
        batch.jobs.append(FrameJob(msg, meta, time.monotonic(), future))

    def _close_batch(self) -> None:
        batch, self.open_batch = self.open_batch, None
        if batch is None or batch.is_empty():
            return
        self.in_flight.append(batch)
        while not self.pipeline.submit(batch, timeout=0.01):
            if self._stopping:  # a full pipeline (a hung engine, say) must not hold up a stop
                self._drop(batch, "stopping before it entered the pipeline")
                return
            self._service()  # the pipeline is full: publish what it finished meanwhile
            if batch.epoch != self.pipeline.epoch:
                return  # rewound meanwhile (exactly-once abort, lost partitions): read again

    def _drop(self, batch: Batch, reason: str) -> None:
        """Leave ``batch`` uncommitted: it goes to the delivery as failed, which holds its
        partitions, so no later offset of theirs is committed past its frames."""
        batch.fail(reason)
        self.delivery.deliver(batch)

    @property
    def _stopping(self) -> bool:
        return self.stop.is_set() or self._failed

    def _pipeline_stuck(self) -> bool:
        """A stage has held one batch past the liveness timeout (a hung engine): waiting is futile."""
        return self.pipeline.longest_busy_s() >= self.config.metrics.liveness_timeout_s

    def _service(self, *, force: bool = False) -> None:
        """Publish the batches the pipeline finished, in order, and commit what is done."""
        self._check_fatal()
        for batch in self.pipeline.take_finished():
            self.delivery.deliver(batch)
        try:
            self.delivery.service(stopping=self._stopping, force=force)
        except DeliveryFailed as exc:
            raise WorkerError(str(exc)) from exc
        if self.detectors.retired and not self.pipeline.busy:
            self.detectors.close_retired()
        self._apply_backpressure()

    def _apply_backpressure(self) -> None:
        """Pause fetching while too many batches (and their images) are in flight."""
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
        fatal = self.pipeline.fatal
        if fatal is not None:
            raise WorkerError(f"inference stage failed: {fatal!r}") from fatal

    def _drain(self) -> None:
        """Finish everything fetched so far and commit it (used on revoke and shutdown).

        Bounded: with Kafka away, what is not acknowledged in time stays uncommitted (read again);
        with a stage stuck past the liveness timeout, what is inside the pipeline does too.
        """
        self._close_batch()
        deadline = time.monotonic() + (30.0 if self.health.is_up("kafka") else 3.0)
        while self.pipeline.busy and time.monotonic() < deadline and not self._pipeline_stuck():
            self.pipeline.wait(0.02)
            self._service()
        self._service(force=True)
        self.delivery.settle(deadline, stopping=self._stopping)
        if self.in_flight:  # left uncommitted: read again by whoever owns the partitions next
            log.warning("%d batches not finished in time; left uncommitted", len(self.in_flight))
            self.in_flight.clear()
            self.pipeline.discard()

    def _rewind(self, resume_at: dict[tuple[str, int], int] | None = None) -> None:
        """Exactly-once abort: seek back to every uncommitted frame and drop the work in flight.

        Each partition goes back to the first frame of its earliest batch, or to ``resume_at``'s
        offset for it (the group's committed offset, after a commit of unknown outcome).
        """
        positions: dict[tuple[str, int], int] = {}
        for batch in self.in_flight:
            batch.rewind_offsets(positions)
        if self.open_batch is not None:
            self.open_batch.rewind_offsets(positions)
            self.open_batch = None
        positions.update((key, offset) for key, offset in (resume_at or {}).items() if key in positions)
        self.in_flight.clear()
        self.pipeline.discard()
        for (topic, partition), offset in sorted(positions.items()):
            try:
                self.consumer.seek(TopicPartition(topic, partition, offset))
            except KafkaException as seek_error:  # no longer ours: the next owner starts from the commit
                log.info("not rewinding %s[%d]: %s", topic, partition, seek_error)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Partitions taken away without a rebalance (session timed out, e.g. a broker outage).

        Another worker may own them already: drop in-flight work without committing; their
        frames are read again from the committed offsets by whoever owns them now.
        """
        log.warning(
            "partitions lost: %s; dropping in-flight work uncommitted", [p.partition for p in partitions]
        )
        self._revocations += 1
        self.open_batch = None
        self.in_flight.clear()
        self.pipeline.discard()
        self.delivery.lost()

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("partitions revoked: %s; finishing in-flight batches", [p.partition for p in partitions])
        self._revocations += 1
        self._drain()
        self.delivery.revoked(partitions)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("partitions assigned: %s", [p.partition for p in partitions])
        self.kafka.topic_found()
        # librdkafka keeps a partition paused across lost/revoked and re-assigned, and the
        # back-pressure may have reset `paused` in between (on an empty assignment): always start
        # the new assignment fetching; the back-pressure pauses it again if batches still lag.
        try:
            consumer.resume(partitions)
        except KafkaException as exc:
            log.warning("could not resume the new partitions: %s", exc)
        self.paused = False
        self.tracker_state.restore(p.partition for p in partitions)  # before any of their frames
        self._last_activity = time.monotonic()

    def _on_ack(self, camera: str, capture_ns: int) -> None:
        age_s = max(0.0, (time.time_ns() - capture_ns) / 1e9)
        metrics.FRAME_AGE_SECONDS.observe(age_s)
        self.stats.frame_ages_ms.append(age_s * 1e3)
        self.stats.last_ack = time.monotonic()

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
        self.consumer.subscribe(
            [self.config.topics.frames.name],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        metrics.MODEL_INFO.labels(inf.model, self.detectors.current().manifest.version).set(1)
        heartbeat = self.health.loop("inference")  # /healthz: 503 once this loop stops beating
        liveness_s = self.config.metrics.liveness_timeout_s
        try:
            while not self.stop.is_set():
                # A stage stuck on one batch (a hung engine) stops the beat even while the loop
                # itself keeps running below the back-pressure limit.
                if self.pipeline.longest_busy_s() < liveness_s:
                    heartbeat.beat()
                self._check_fatal()
                reason = self.kafka.check(self.consumer)
                if reason is not None:
                    raise WorkerError(reason)
                self._fetch(inf.max_batch, inf.max_wait_ms)
                batch = self.open_batch
                if batch is not None and (
                    len(batch.jobs) >= inf.max_batch
                    or batch.age_ms() >= inf.max_wait_ms
                    or (inf.close_when_idle and self.pipeline.wants_batch)
                ):
                    self._close_batch()
                self._service()
                self._evict_idle_trackers()
                if self._idle_for(max_idle_s):
                    break
            self._drain()
        except BaseException:
            self._failed = True  # the drain of the closing consumer commits nothing past a failure
            raise
        finally:
            heartbeat.close()
            stuck = self._pipeline_stuck()
            self.pipeline.close(timeout=0.0 if stuck else 30.0)
            self.consumer.close()
            try:
                self.delivery.close(kafka_up=self.health.is_up("kafka"))
            finally:
                self.decode_pool.shutdown(wait=False, cancel_futures=True)
                self.claims.close()
                if not stuck:  # a model a stuck stage is still inside is left to the process's exit
                    self.detectors.close()
        return self.stats

    def _evict_idle_trackers(self) -> None:
        """Now and then, drop the trackers of cameras gone silent (on this thread, which also
        updates them; never one in the open transaction's undo log)."""
        now = time.monotonic()
        if now < self._next_eviction:
            return
        self._next_eviction = now + min(60.0, self.config.inference.tracker_idle_ttl_s / 2)
        evicted = self.trackers.evict_idle(now)
        if evicted:
            log.info("trackers of cameras silent for %.0f s dropped: %s", self.trackers.idle_ttl_s, evicted)

    def _fetch(self, max_batch: int, max_wait_ms: float) -> None:
        """One poll: add what arrives to the open batch."""
        if self.open_batch is not None:
            wait = max(0.0, max_wait_ms / 1e3 - (time.monotonic() - self.open_batch.opened))
        else:
            wait = 0.1
        if self.in_flight:
            wait = min(wait, _FINISHED_POLL_S)
        # librdkafka's consume returns early only once it has `num_messages`: with no batch open,
        # ask for one, so the first frame opens a batch (and starts its max_wait_ms) on arrival
        # instead of waiting out the whole poll for a full batch.
        opening = self.open_batch is None
        room = max_batch - len(self.open_batch.jobs) if self.open_batch else 1
        messages = self.consumer.consume(num_messages=max(1, room), timeout=wait)
        if opening and messages and max_batch > 1:
            # What the same fetch already brought (the other cameras' frames of the moment) joins the
            # new batch before an idle model closes it: a burst runs as one batch, not one lone frame
            # and then the rest behind it. Timeout 0: this never waits for frames still to come.
            revocations = self._revocations
            more = self.consumer.consume(num_messages=max_batch - 1, timeout=0)
            # A revoke served by this second call drained and committed what was fetched before it,
            # without the first call's frames: they belong to the old assignment (whoever owns their
            # partitions now reads them from the committed offset, this worker too if it got them
            # back).
            messages = more if self._revocations != revocations else messages + more
        for msg in messages:
            if msg.error() is not None:
                self.kafka.on_error(msg.error())
                continue
            if self.open_batch is None:
                self.open_batch = Batch(opened=time.monotonic(), epoch=self.pipeline.epoch)
            self._accept(msg, self.open_batch)
            self.stats.frames += 1
            self._last_activity = time.monotonic()
            if self.stats.first_fetch is None:
                self.stats.first_fetch = self._last_activity


def _camera_label(msg: Message) -> str:
    key = msg.key()
    return key.decode("utf-8", "replace")[:64] if key else "?"
