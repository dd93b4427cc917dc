"""`sightline evidence`: the alerts topic in, a snapshot, a clip and a record per alert out.

Its own consumer group reads the alerts topic (read_committed). Each alert becomes a job: the
snapshot is rendered as soon as its key frame's detections are in, the clip once a frame
captured after the clip's end has arrived, or once `post_roll_wait_s` has passed (then the record
says which frames did not come). Offsets are committed only past alerts whose evidence is
finished, so a restart picks up the unfinished ones; one that finds an alert's record finished
skips it, and a part already stored is not rendered again: evidence is idempotent by alert id.

Kafka and Redis outages are ridden out as in the other stages (librdkafka reconnects, claim
checks are re-read until Redis answers) and reported by `Health("evidence")`. The retention
sweep runs in the same loop.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from schemas.alert import AlertRecord
from schemas.errors import ContractError
from sightline.config import SightlineConfig
from sightline.drawing import camera_rules
from sightline.evidence.metrics import DELETED, FINISHED, PENDING
from sightline.evidence.notify import EvidenceNotifier
from sightline.evidence.plan import NS, plan_for
from sightline.evidence.record import EvidenceRecord, load_record
from sightline.evidence.render import Job, Renderer
from sightline.evidence.source import DetectionsScan
from sightline.evidence.store import LocalDirStore, sweep
from streams.claimcheck import ClaimCheckStore, ClaimCheckUnavailable
from streams.health import Health
from streams.kafka import blocking_consumer_config, consumer_config, is_fatal_error
from streams.kafka_probe import KafkaBackProbe
from streams.topic_reader import TopicReadError

log = logging.getLogger(__name__)

COMMIT_EVERY_S = 2.0
RETRY_EVERY_S = 1.0  # how often a job waiting for its post-roll reads again


@dataclass
class EvidenceStats:
    alerts: int = 0
    complete: int = 0
    partial: int = 0
    missing: int = 0
    already: int = 0  # finished before (a restart, a replayed alert)


class EvidenceService:
    def __init__(self, config: SightlineConfig, stop: threading.Event | None = None) -> None:
        self.config, self.settings = config, config.evidence
        self.stop = stop or threading.Event()
        self.stats = EvidenceStats()
        self.health = Health("evidence")
        self.store = LocalDirStore(self.settings.dir)
        self.claims = ClaimCheckStore(
            config.redis.url, config.frames.claim_check_ttl_s, health=self.health, stop=self.stop
        )
        conf = blocking_consumer_config(config.kafka, self.settings.group_id, "sightline-evidence")
        conf["error_cb"] = self._client_error
        self.consumer = Consumer(conf)
        # Reads frames and detections by assignment (no group): offsets_for_times, then forward.
        reader_group = f"{self.settings.group_id}-reader-{uuid.uuid4().hex[:8]}"
        # It jumps between partitions (assign, read a span): with librdkafka's default 500 ms
        # fetch wait each jump waited for the previous long poll, seconds per alert. Unassigned
        # after each pass over the jobs, so the short wait costs no fetching while idle.
        self.reader = Consumer(
            {**consumer_config(config.kafka, reader_group, "sightline-evidence"), "fetch.wait.max.ms": 20}
        )
        self.renderer = Renderer(self.settings, self.store, self.reader, self.claims, camera_rules(config))
        self.notifier = EvidenceNotifier(config)
        self.jobs: dict[str, Job] = {}
        # Per alerts partition: offset -> alert id, for the alerts not finished yet.
        self.open: dict[int, dict[int, str]] = {}
        self.next_offset: dict[int, int] = {}
        self._kafka_back = KafkaBackProbe(
            self.health, self.consumer, config.topics.alerts.name, every_s=1.0, timeout_s=2
        )

    def _client_error(self, err: KafkaError) -> None:
        if err.code() == KafkaError._ALL_BROKERS_DOWN:
            self.health.degraded("kafka", err.str())
        else:
            log.debug("evidence: kafka: %s", err)

    # -- alerts in -----------------------------------------------------------------------------
    def _accept(self, msg: Message) -> None:
        partition, offset = msg.partition() or 0, msg.offset() or 0
        self.next_offset[partition] = offset + 1
        try:
            alert = AlertRecord.decode(msg.value() or b"")
        except ContractError as exc:
            log.warning("evidence: skipping alerts[%d]@%d: %s", partition, offset, exc)
            return
        job = self.jobs.get(alert.alert_id)
        if job is None:
            record = load_record(self.store, alert.alert_id)
            if record is not None and record.status != "pending":
                self.stats.already += 1
                if not self.notifier.wants(alert):
                    return
                # Its event may not have been acknowledged before a restart: the ledger knows.
                job = self.jobs[alert.alert_id] = self._job(alert, record)
                job.resumed = True
            else:
                job = self._job(alert, record or EvidenceRecord.new(alert))
                self.renderer.save(job.record)  # the API shows "pending" from now on
                self.jobs[alert.alert_id] = job
                self.stats.alerts += 1
        job.offsets.add((partition, offset))
        self.open.setdefault(partition, {})[offset] = alert.alert_id

    def _job(self, alert: AlertRecord, record: EvidenceRecord) -> Job:
        plan = plan_for(alert, self.settings)
        scan = DetectionsScan(
            self.config.topics.detections.name, alert.camera_id, plan.clip_start_ns, plan.clip_end_ns,
            int(self.settings.search_slack_s * NS),
        )  # fmt: skip
        until_end_s = max(0.0, (plan.clip_end_ns - time.time_ns()) / NS)
        deadline = time.monotonic() + until_end_s + self.settings.post_roll_wait_s
        return Job(alert, plan, record, scan, deadline)

    # -- jobs ----------------------------------------------------------------------------------
    def _work(self) -> None:
        """One pass: snapshots first, and at most one clip, so a new alert's snapshot never
        waits behind the clips of the alerts before it (the loop reads new alerts between)."""
        now = time.monotonic()
        order = sorted(
            self.jobs.items(), key=lambda item: item[1].record.parts["snapshot"].status != "pending"
        )
        clips = 0
        for alert_id, job in order:
            if self.stop.is_set():
                continue
            parts = job.record.parts
            clip_pending = parts["clip"].status == "pending"
            later = clips and parts["snapshot"].status != "pending"  # only a clip left: next pass
            if not job.done and job.next_try <= now and not later:
                job.next_try = now + RETRY_EVERY_S
                try:
                    self.renderer.work(job, now)
                except (TopicReadError, KafkaException) as exc:  # the broker is away: librdkafka reconnects
                    log.debug("evidence of %s: Kafka not readable now, retrying: %s", alert_id, exc)
                    continue
                except ClaimCheckUnavailable:  # stopped while Redis was away: resumed after a restart
                    return
                job.next_try = max(job.next_try, now + self._until_clip_end(job))
                clips += clip_pending and parts["clip"].status != "pending"
            if job.done and self._notified(job):
                self._finished(alert_id, job)
        with contextlib.suppress(KafkaException):
            self.reader.unassign()
        PENDING.set(len(self.jobs))

    @staticmethod
    def _until_clip_end(job: Job) -> float:
        """Seconds until the clip's last frame is captured, once only the clip is left: re-reading
        the topic before then finds nothing it needs (with many alerts open, that reading was
        most of the process's work)."""
        if job.record.parts["snapshot"].status == "pending":
            return 0.0
        return max(0.0, (job.plan.clip_end_ns - time.time_ns()) / NS)

    def _notified(self, job: Job) -> bool:
        """alert.evidence_ready acknowledged (or given up on) by every endpoint that asked for it."""
        if job.notify is None:
            job.notify = self.notifier.submit(job.alert, job.record)
        return job.notify.done()

    def _finished(self, alert_id: str, job: Job) -> None:
        del self.jobs[alert_id]
        for partition, offset in job.offsets:
            self.open.get(partition, {}).pop(offset, None)
        if job.resumed:  # counted when it was rendered
            return
        status = job.record.status
        FINISHED.labels(status).inc()
        setattr(self.stats, status, getattr(self.stats, status) + 1)
        if status != "complete":
            why = "; ".join(g.reason for p in job.record.parts.values() for g in p.missing)
            log.warning("evidence %s of alert %s (%s): %s", status, alert_id, job.alert.summary, why)

    def _revoked(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Jobs of partitions another member takes over are left to it (it resumes them)."""
        gone = {tp.partition for tp in partitions}
        for alert_id, job in list(self.jobs.items()):
            if {p for p, _ in job.offsets} <= gone:
                del self.jobs[alert_id]
        for partition in gone:
            self.open.pop(partition, None)
            self.next_offset.pop(partition, None)

    def _commit(self, asynchronous: bool = True) -> None:
        """Per partition, up to the oldest alert not finished (or past everything read)."""
        topic = self.config.topics.alerts.name
        offsets = []
        for partition, end in self.next_offset.items():
            unfinished = self.open.get(partition)
            offsets.append(TopicPartition(topic, partition, min(unfinished) if unfinished else end))
        if not offsets:
            return
        try:
            self.consumer.commit(offsets=offsets, asynchronous=asynchronous)
        except KafkaException as exc:  # broker away, a rebalance: next time
            log.debug("evidence commit: %s", exc)

    def _sweep(self) -> None:
        deleted = sweep(self.store, self.settings.retention_days * 86400)
        if deleted:
            DELETED.inc(deleted)
            log.info("evidence: retention sweep deleted %d object(s)", deleted)

    # -- the loop ------------------------------------------------------------------------------
    def run(self, max_idle_s: float | None = None) -> EvidenceStats:
        """Until `stop` is set, or (`max_idle_s`) nothing arrived for that long and no job is open."""
        assigned: list[float] = []
        self.consumer.subscribe(
            [self.config.topics.alerts.name],
            on_assign=lambda _c, _p: assigned.append(time.monotonic()),
            on_revoke=self._revoked,
        )
        last_msg = last_commit = time.monotonic()
        last_sweep = 0.0
        heartbeat = self.health.loop("evidence")
        try:
            while not self.stop.is_set():
                heartbeat.beat()
                msgs = self.consumer.consume(100, 0.2)
                for msg in msgs:
                    err = msg.error()
                    if err is None:
                        self._accept(msg)
                        last_msg = time.monotonic()
                    elif is_fatal_error(err):
                        log.error("evidence: %s; stopping", err)
                        raise KafkaException(err)
                    else:
                        log.debug("evidence consumer: %s", err)
                self._work()
                self._kafka_back.poll()
                if time.monotonic() - last_commit > COMMIT_EVERY_S:
                    self._commit()
                    last_commit = time.monotonic()
                if time.monotonic() - last_sweep > self.settings.sweep_every_s:
                    self._sweep()
                    last_sweep = time.monotonic()
                idle = time.monotonic() - max(last_msg, assigned[0] if assigned else float("inf"))
                if max_idle_s is not None and assigned and not self.jobs and idle > max_idle_s:
                    break
        finally:
            heartbeat.close()
            self._commit(asynchronous=False)
            self.notifier.close()
            self.consumer.close()
            self.reader.close()
            self.claims.close()
        return self.stats
