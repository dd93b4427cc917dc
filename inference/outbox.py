"""Turning a finished batch into Kafka records: tracking, detections, tracker snapshots, dead letters.

Both delivery strategies publish through this one object; they differ only in what surrounds it
(acknowledgements and offset commits, or a transaction). It runs on the consumer thread, which is
also where the trackers' undo log is opened and rolled back, so tracker updates need no hand-off.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from functools import partial

import supervision as sv
from confluent_kafka import KafkaError, KafkaException, Message, Producer

from inference import metrics
from inference.batching import Batch, FrameJob, Rejected, SkippedFrame
from inference.parts import WorkerParts
from inference.records import BatchTiming, detections_headers, detections_record, skipped_record
from schemas.dead_letter import dead_letter_headers
from streams.kafka import produce_when_room

log = logging.getLogger(__name__)

# Room left in a record for headers and framing when a dead letter carries the frame's value.
_RECORD_OVERHEAD = 64 * 1024


class Outbox:
    def __init__(
        self, parts: WorkerParts, *, detections_topic: str, dead_letter_topic: str, message_max_bytes: int
    ) -> None:
        self.parts = parts
        self.detections_topic = detections_topic
        self.dead_letter_topic = dead_letter_topic
        self.message_max_bytes = message_max_bytes

    def publish(self, producer: Producer, batch: Batch) -> None:
        """Track, produce the detections of every good frame and the record of every skipped one
        (together in record order, so each camera's records keep their `seq` order), a tracker
        snapshot per camera, and the batch's dead letters. Delivery reports land on ``batch``."""
        detector = batch.detector
        produced_ns = time.time_ns()
        produced_at = time.monotonic()
        if batch.good or batch.skipped:
            assert detector is not None
            model = (detector.manifest.name, detector.manifest.version)
            ran = zip(batch.good, batch.results, strict=True)
            for job, detections in _in_record_order(ran, batch.skipped):
                if isinstance(job, SkippedFrame):
                    self._produce_skipped(producer, batch, job, model, produced_ns)
                    continue
                assert detections is not None and batch.timing is not None
                meta = job.meta
                tracked = self.parts.trackers.update(
                    meta.camera_id,
                    detections,
                    meta.stream_ts,
                    seq=meta.seq,
                    partition=job.msg.partition(),
                    offset=job.msg.offset(),
                )
                queue_ms = (batch.started - job.fetched) * 1e3
                metrics.QUEUE_SECONDS.observe(max(0.0, queue_ms / 1e3))
                fetched_ns = produced_ns - (produced_at - job.fetched) * 1e9
                stages_ms = (
                    (fetched_ns - meta.capture_ns) / 1e6, queue_ms,
                    (batch.finished - batch.started) * 1e3, (produced_at - batch.finished) * 1e3,
                )  # fmt: skip
                for child, ms in zip(metrics.FRAME_STAGE_CHILDREN, stages_ms, strict=True):
                    child.observe(max(0.0, ms / 1e3))
                self.parts.stats.frame_stages_ms.append(stages_ms)
                value = detections_record(
                    job.msg,
                    meta,
                    tracked,
                    model=model,
                    queue_ms=queue_ms,
                    timing=batch.timing,
                    produced_ns=produced_ns,
                )
                self._produce_detections(producer, batch, value, job)
        if batch.good:
            assert batch.timing is not None
            self.parts.tracker_state.publish(
                producer, [(j.meta.camera_id, j.msg.partition()) for j in batch.good], batch
            )
            self._observe(batch.timing, len(batch.good))
        for rejected in batch.rejected:
            self.dead_letter(producer, batch, rejected)
        self.parts.stats.batches += 1

    @staticmethod
    def _observe(timing: BatchTiming, frames: int) -> None:
        metrics.BATCH_SIZE.observe(frames)
        metrics.PREPROCESS_SECONDS.observe(timing.preprocess_ms / 1e3)
        metrics.INFERENCE_SECONDS.observe(timing.inference_ms / 1e3)

    def _produce_skipped(
        self, producer: Producer, batch: Batch, frame: SkippedFrame, model: tuple[str, str], produced_ns: int
    ) -> None:
        metrics.SKIPPED.labels(frame.meta.camera_id, frame.skipped.reason).inc()
        value = skipped_record(frame.msg, frame.meta, frame.skipped, model=model, produced_ns=produced_ns)
        self._produce_detections(producer, batch, value, frame)
        self.parts.stats.skipped += 1

    def _produce_detections(
        self, producer: Producer, batch: Batch, value: bytes, job: FrameJob | SkippedFrame
    ) -> None:
        meta = job.meta
        # A skipped frame's age is the policy at work, not how long detection took: not observed.
        ran_ns = meta.capture_ns if isinstance(job, FrameJob) else None
        callback = partial(self._on_delivered, batch, meta.camera_id, ran_ns)
        key = meta.camera_id.encode()
        error = self._send(
            producer, batch, self.detections_topic, key, value, detections_headers(meta), callback
        )
        if error is not None:
            self.dead_letter(producer, batch, Rejected(job.msg, f"detections record not produced: {error}"))
            return
        self.parts.stats.records += 1

    def dead_letter(self, producer: Producer, batch: Batch, rejected: Rejected) -> None:
        msg = rejected.msg
        log.warning(
            "dead-lettering %s[%d]@%d: %.500s", msg.topic(), msg.partition(), msg.offset(), rejected.reason
        )
        metrics.DEAD_LETTERS.labels(rejected.reason.split(":")[0][:40]).inc()
        claim_check = next((v for k, v in msg.headers() or () if k == "claim-check" and v), None)
        if claim_check:  # keep the parked image past its TTL, so the dead letter can be replayed
            self.parts.claims.keep(claim_check.decode("utf-8", "replace"))
        value, reason = msg.value(), rejected.reason
        room = self.message_max_bytes - _RECORD_OVERHEAD
        if value and len(value) > room:  # it would be refused again on every restart: keep the reason
            reason = f"{reason}; value of {len(value)} bytes dropped (over the record size limit)"
            value = None
        while True:
            headers = dead_letter_headers(
                msg.headers(), reason, "inference", msg.topic(), msg.partition(), msg.offset()
            )
            callback = partial(_delivered, batch)
            error = self._send(producer, batch, self.dead_letter_topic, msg.key(), value, headers, callback)
            if error is None:
                self.parts.stats.dead_letters += 1
                return
            if not value:  # a poison record must never stop the worker: log it and move on
                log.error(
                    "could not dead-letter %s[%d]@%d: %s", msg.topic(), msg.partition(), msg.offset(), error
                )
                return
            reason = f"{rejected.reason}; value of {len(value)} bytes dropped: {error}"
            value = None

    @staticmethod
    def _send(
        producer: Producer,
        batch: Batch,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]],
        callback: Callable[[KafkaError | None, Message], None],
    ) -> KafkaException | None:
        """Produce one record for ``batch``; a record Kafka refuses (too large, ...) is returned."""
        batch.expect_delivery()
        try:
            produce_when_room(producer, topic, key=key, value=value, headers=headers, on_delivery=callback)
        except KafkaException as exc:
            batch.delivered(None)  # no delivery report will come for it
            return exc
        return None

    def _on_delivered(
        self, batch: Batch, camera: str, capture_ns: int | None, err: KafkaError | None, _msg: Message
    ) -> None:
        if err is None:
            metrics.DETECTIONS_OUT.labels(camera).inc()
            if capture_ns is not None:
                self.parts.on_ack(camera, capture_ns)
        batch.delivered(err)


def _delivered(batch: Batch, err: KafkaError | None, _msg: Message) -> None:
    batch.delivered(err)


def _in_record_order(
    ran: Iterable[tuple[FrameJob, sv.Detections]], skipped: list[SkippedFrame]
) -> list[tuple[FrameJob | SkippedFrame, sv.Detections | None]]:
    """Run and skipped frames merged by (partition, offset): the order their records must keep."""
    items: list[tuple[FrameJob | SkippedFrame, sv.Detections | None]] = [*ran, *((s, None) for s in skipped)]
    if skipped:
        items.sort(key=lambda item: (item[0].msg.partition(), item[0].msg.offset()))
    return items
