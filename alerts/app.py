"""The faust-streaming app: a rules agent (detections + POS -> alerts) and a delivery agent
(alerts -> webhooks), both with manual acks so offsets are committed only after the work.

Order per rules batch: evaluate -> publish alerts and wait for the broker; then, at most every
`checkpoint_interval_ms`: checkpoint state and offsets in Redis (fenced) -> ack. A failure to
load, publish or checkpoint aborts: the in-memory state is dropped and the records taken since
the last checkpoint are applied again to the checkpointed state, with backoff, until it works.
That bookkeeping is `alerts.progress.RulesProgress`; this module adds faust, the lock that keeps
the agent, the checkpoint timer and revocations from interleaving, and the backoff.
docs/alerts.md says what that guarantees.

A newly saved rules version (followed by `alerts.rules_watch.RulesWatch`) takes over between two
batches: checkpoint, switch, checkpoint again, then the next records (docs/rules.md).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import threading
import time
from collections.abc import Awaitable
from typing import Any

import faust
from faust.types import EventT, StreamT
from redis.exceptions import RedisError

from alerts.checkpoint import CheckpointFenced, CheckpointStore, connect
from alerts.engine import Engine
from alerts.faust_transport import CommittedApp, quiet_aiokafka
from alerts.health_ticks import ticks
from alerts.in_order_acks import InOrderAcker, Slot
from alerts.metrics import HEALTH
from alerts.progress import RulesProgress
from alerts.rules_watch import RulesWatch
from alerts.runner import BatchResult, RawRecord
from alerts.settings import AlertsConfig, RulesSettings
from alerts.webhooks.dead_letters import DeadLetters, Headers, Source
from alerts.webhooks.dispatcher import Dispatcher
from schemas.alert import AlertRecord
from schemas.dead_letter import dead_letter_headers
from schemas.errors import ContractError
from streams.health import Heartbeat
from streams.heap import freeze_startup_heap

log = logging.getLogger(__name__)
RULES_STAGE = "alerts"  # a `dlq-stage` value of schemas/dead_letter.headers.schema.json
# Alerts held by the delivery agent beyond the largest endpoint backlog: a dead endpoint hits its
# own `max_pending` (and dead-letters) before it can exhaust the shared slots of the others.
EXTRA_IN_FLIGHT = 5_000
# A publish not acknowledged by then counts as failed (the batch is re-applied and re-published).
PUBLISH_TIMEOUT_S = 30.0
SHUTDOWN_GRACE_S = 15.0  # SIGTERM/SIGINT: then exit even if the broker never answers
RETRY_MAX_S = 5.0
BEAT_EVERY_S = 1.0


def broker_urls(bootstrap: str) -> list[str]:
    return [f"kafka://{host.strip()}" for host in bootstrap.split(",") if host.strip()]


class PublishFailed(Exception):
    """The broker did not acknowledge a batch's alerts or dead letters."""


def _raw(event: EventT) -> RawRecord:
    m = event.message
    return RawRecord(m.topic, m.partition, m.offset, m.value, handle=event)


def _dependency(exc: BaseException) -> str:
    return "kafka" if isinstance(exc, PublishFailed) else "redis"


class AlertsApp:
    """Builds the faust app from the configuration; `app.main()`/a Worker runs it."""

    def __init__(self, config: AlertsConfig, rules: RulesSettings, watch: RulesWatch | None = None) -> None:
        self.config = config
        settings = config.alerts
        topics = config.topics
        settings.data_dir.mkdir(parents=True, exist_ok=True)  # faust creates only the last level
        self.app = CommittedApp(
            settings.app_id,
            broker=broker_urls(config.kafka.bootstrap_servers),
            value_serializer="raw",
            key_serializer="raw",
            web_enabled=False,
            datadir=str(settings.data_dir),
            # Records taken but not yet checkpointed are simply re-read by the next owner (the
            # checkpoint skips what was applied), so shutdown need not wait for them to drain.
            stream_wait_empty=False,
            autodiscover=False,
            topic_allow_declare=False,
            consumer_auto_offset_reset="earliest",
            producer_acks=-1,
            producer_linger=0.001,
            broker_commit_interval=0.5,
            consumer_group_instance_id=settings.instance_id or socket.gethostname(),
            broker_session_timeout=10.0,
            broker_heartbeat_interval=1.0,
            stream_buffer_maxsize=max(4096, settings.batch_max * 2),
            broker_max_poll_records=max(500, settings.batch_max),
        )
        self.redis = connect(config.redis.url)
        store = CheckpointStore(self.redis, settings.redis_prefix, settings.app_id)
        # The saved versions (the rules file is version 0 until one is saved).
        self.watch = watch or RulesWatch(config.kafka, topics.rules.name, rules)
        engine = Engine(self.watch.rules(self.watch.latest), self.watch.latest, self.watch.rules)
        self.progress = RulesProgress(
            engine, store, topics.detections.name, topics.pos_events.name, self._publish,
            health_topic=topics.camera_health.name,
        )  # fmt: skip
        self.alerts_topic = topics.alerts.name
        self.dlq_topic = topics.dead_letter.name
        # Through faust's own aiokafka producer: one Kafka client stack in this process.
        self.dead_letters = DeadLetters(self.dlq_topic, self._produce_acked)
        self.dispatcher = Dispatcher.build(settings, self.redis, self.dead_letters, config.evidence.urls)
        largest = max((w.max_pending for w in settings.webhooks), default=0)
        self.slots = asyncio.Semaphore(largest + EXTRA_IN_FLIGHT)
        self._rules_lock = asyncio.Lock()
        self._rules_stream: StreamT | None = None
        self._epoch = 0  # bumped on every revocation: a batch being retried is then dropped
        self._failures = 0
        self._retry_at = 0.0
        if settings.run_rules:
            inputs = (topics.detections.name, topics.pos_events.name, topics.camera_health.name)
            source = self.app.topic(*inputs, value_serializer="raw")
            self.app.agent(source, name="rules", concurrency=1)(self._rules_agent)
            if settings.health_tick_s > 0:  # camera_health offline_s, decoder gone (alerts/health_ticks.py)
                self.app.timer(settings.health_tick_s)(self._health_ticks)
            self.app.timer(max(settings.checkpoint_interval_ms / 1000, 0.05))(self._checkpoint_timer)
            self.app.task(self._follow_rules)
        if settings.run_webhooks and settings.webhooks:
            alerts = self.app.topic(self.alerts_topic, value_serializer="raw")
            self.app.agent(alerts, name="deliver", concurrency=1)(self._deliver_agent)
        self.app.on_partitions_revoked.connect(self._on_revoked)
        self.app.timer(2.0)(self._probe_kafka)
        self._heartbeat: Heartbeat | None = None
        self.app.timer(BEAT_EVERY_S)(self._beat_when_idle)
        quiet_aiokafka()
        self._probing = False

    # -- liveness ------------------------------------------------------------------------------
    async def _beat_when_idle(self) -> None:
        """/healthz (metrics.alerts_port): the event loop runs, and the rules agent is not stuck.

        While the agent is idle this timer beats for it; inside a batch only the agent's own
        attempts beat (each bounded: publish by PUBLISH_TIMEOUT_S, retries by RETRY_MAX_S), so a
        batch hung on an await, or an event loop blocked by a synchronous call, stops the beat.
        """
        if self._heartbeat is None:  # registered on the event loop's thread: its health reports beat too
            self._heartbeat = HEALTH.loop("alerts")
        if not self._rules_lock.locked():
            self._heartbeat.beat()

    def _beat(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.beat()

    async def _probe_kafka(self) -> None:
        """While Kafka is marked down, ask it for metadata every 2 s: it answers when back."""
        if HEALTH.is_up("kafka") or self._probing:
            return
        self._probing = True
        try:
            # faust's Producer does not expose its aiokafka client but through this accessor.
            client = self.app.producer._ensure_producer().client  # type: ignore[attr-defined]
            await asyncio.wait_for(client.fetch_all_metadata(), 1.5)
            HEALTH.ok("kafka")
        except Exception:  # still away (or the producer not started yet): the next tick asks again
            pass
        finally:
            self._probing = False

    async def _on_revoked(self, app: faust.App, revoked: Any, **kwargs: Any) -> None:
        """Save what was applied if Redis lets us, then drop in-memory state: the next owner
        reloads it (or, if the save failed, re-applies from the previous checkpoint)."""
        self._epoch += 1
        async with self._rules_lock:
            if self.progress.pending:
                try:
                    await asyncio.wait_for(self._checkpoint(), 10.0)
                except Exception as exc:  # never let a rebalance crash the app
                    log.warning("no checkpoint on revocation (%s); the next owner re-applies", exc)
            self.progress.drop()

    # -- rules ---------------------------------------------------------------------------------
    def _current(self, taken: list[EventT]) -> list[EventT]:
        """Drop what was taken before the last rebalance: faust re-reads it from the commit point."""
        generation = self.app.consumer_generation_id
        assigned = self.app.consumer.assignment()
        return [e for e in taken if e.message.generation_id == generation and e.message.tp in assigned]

    async def _rules_agent(self, stream: StreamT) -> None:
        settings = self.config.alerts
        self._rules_stream = stream
        async for taken in stream.noack_take(settings.batch_max, within=settings.batch_wait_ms / 1000):
            async with self._rules_lock:
                await self._rules_batch([_raw(e) for e in self._current(taken)])

    async def _rules_batch(self, records: list[RawRecord]) -> None:
        """Apply, publish and (when due) checkpoint; on failure abort and retry until it works."""
        interval = self.config.alerts.checkpoint_interval_ms / 1000
        epoch, pending = self._epoch, records
        while True:
            self._beat()  # once per attempt: retrying through an outage is not hanging
            if epoch != self._epoch:
                return  # revoked meanwhile: the batch is re-read after the rebalance
            try:
                if self.watch.latest != self.progress.engine.version and not self.progress.replaying:
                    await self._switch_rules()
                if pending:
                    await self.progress.advance(pending)
                    pending = []
                if self.progress.commit_due(interval):
                    await self._checkpoint()
                self._recovered()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await self._abort(exc)

    async def _follow_rules(self) -> None:
        await self.watch.follow()

    async def _switch_rules(self) -> None:
        """The version in force changed: between two records, with a checkpoint on each side,
        so the checkpoint says which version the state after it was built with."""
        version = self.watch.latest
        rules = self.watch.rules(version)
        if self.progress.pending:
            await self._checkpoint()
        was = self.progress.engine.version
        converted = self.progress.switch(rules, version)
        await self._checkpoint()
        log.warning(
            "rules: version %d in force from %s (was %d; %d camera(s) in memory converted)",
            version,
            self.progress.position(),
            was,
            len(converted),
        )

    async def _checkpoint(self) -> None:
        """Commit the progress, then ack what it committed (faust commits acked offsets)."""
        committed = await self.progress.commit()
        if self._rules_stream is not None:
            for raw in committed:
                await self._rules_stream.ack(raw.handle)  # type: ignore[arg-type]

    async def _abort(self, exc: Exception, wait: bool = True) -> None:
        """Drop the in-memory state (re-applied from the checkpoint next time) and back off."""
        self.progress.abort()
        self._failures += 1
        if isinstance(exc, CheckpointFenced):
            log.warning("rules: %s; re-reading from the newer checkpoint", exc)
        elif isinstance(exc, PublishFailed | RedisError | OSError):
            HEALTH.degraded(_dependency(exc), f"{type(exc).__name__}: {exc}")
        else:
            log.error("rules batch failed; retrying from the checkpoint", exc_info=exc)
        delay = random.uniform(0, min(RETRY_MAX_S, 0.1 * 2 ** min(self._failures, 10)))
        self._retry_at = time.monotonic() + delay
        if wait:
            await asyncio.sleep(delay)

    def _recovered(self) -> None:
        if self._failures:
            self._failures = 0
            HEALTH.ok("redis")
            HEALTH.ok("kafka")

    async def _publish(self, result: BatchResult) -> None:
        """Alerts (and rejected records) acknowledged by the broker before any checkpoint."""
        try:
            await asyncio.wait_for(self._send_all(result), PUBLISH_TIMEOUT_S)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise PublishFailed(f"{type(exc).__name__}: {exc}") from exc

    async def _send_all(self, result: BatchResult) -> None:
        producer = self.app.producer
        sends: list[Awaitable[Any]] = []
        for alert in result.alerts:
            sends.append(
                await producer.send(
                    self.alerts_topic, alert.camera_id.encode(), alert.encode(), None, None, None
                )
            )
        for raw, reason in result.rejected:
            headers = dead_letter_headers(None, reason, RULES_STAGE, raw.topic, raw.partition, raw.offset)
            sends.append(await producer.send(self.dlq_topic, None, raw.value, None, None, headers))
        if sends:
            await asyncio.gather(*sends)

    async def _health_ticks(self) -> None:
        """Best effort: a tick lost (Kafka away) only delays an offline alert to the next one."""
        topic = self.config.topics.camera_health
        cameras = self.progress.engine.rules.values()
        for key, value, partition in ticks(cameras, topic.partitions, time.time_ns()):
            try:
                await self.app.producer.send(topic.name, key, value, partition, None, None)
            except Exception as exc:  # noqa: BLE001 - never let a tick disturb the rules
                log.debug("camera-health tick not sent: %s", exc)

    async def _produce_acked(self, topic: str, key: bytes, value: bytes, headers: Headers) -> None:
        """One record through faust's producer (acks=all); returns once the broker has it."""

        async def send() -> None:  # the send itself waits for metadata while the broker is away
            await (await self.app.producer.send(topic, key, value, None, None, headers))

        await asyncio.wait_for(send(), PUBLISH_TIMEOUT_S)

    async def _checkpoint_timer(self) -> None:
        """An idle stream still gets its last records checkpointed and committed."""
        if not self.progress.pending or self._rules_lock.locked() or time.monotonic() < self._retry_at:
            return
        async with self._rules_lock:
            try:
                await self._checkpoint()
                self._recovered()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await self._abort(exc, wait=False)

    # -- delivery ------------------------------------------------------------------------------
    async def _deliver_agent(self, stream: StreamT) -> None:
        acker = InOrderAcker(stream)
        async for event in stream.noack().events():
            await self.slots.acquire()
            slot = acker.track(event)
            msg = event.message
            try:
                alert = AlertRecord.decode(msg.value or b"")
            except ContractError as exc:
                log.error("alert at %s:%d breaks the contract: %s", msg.topic, msg.offset, exc.reason)
                self.slots.release()
                await acker.finish(slot)
                continue
            source = Source(msg.topic, msg.partition, msg.offset)
            task = asyncio.ensure_future(self.dispatcher.dispatch(alert, msg.value, source))
            task.add_done_callback(lambda t, s=slot: self._delivered(t, s, acker))

    def _delivered(self, task: asyncio.Future[Any], slot: Slot, acker: InOrderAcker) -> None:
        self.slots.release()
        if task.cancelled():
            return  # shutting down: not acked, so redelivered (and deduplicated) after restart
        if task.exception() is not None:
            log.error("delivery failed unexpectedly; not acking", exc_info=task.exception())
            return
        asyncio.ensure_future(acker.finish(slot))

    async def close(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.close()
        await self.dispatcher.aclose()
        await self.redis.aclose()


def run(config: AlertsConfig, rules: RulesSettings, loglevel: str = "warning") -> None:
    """Run until SIGINT/SIGTERM (blocking)."""
    from faust.worker import Worker

    class _Worker(Worker):
        def _schedule_shutdown(self, signal: Any) -> None:
            super()._schedule_shutdown(signal)
            _exit_after(SHUTDOWN_GRACE_S)

    alerts_app = AlertsApp(config, rules)
    worker = _Worker(alerts_app.app, loglevel=loglevel, quiet=True)
    freeze_startup_heap()
    worker.execute_from_commandline()


def _exit_after(seconds: float) -> None:
    """A stop that waits on an unreachable broker (leaving the group, committing) must still
    end, or a supervisor could never restart the process. Exiting without it loses nothing:
    what was not checkpointed and acked is read again by the next run."""

    def force() -> None:
        log.warning("shutdown did not finish within %.0fs (Kafka or Redis away); exiting now", seconds)
        logging.shutdown()
        os._exit(0)

    timer = threading.Timer(seconds, force)
    timer.daemon = True
    timer.start()
