"""The faust-streaming app: a rules agent (detections + POS -> alerts) and a delivery agent
(alerts -> webhooks), both with manual acks so offsets are committed only after the work.

Order per rules batch: evaluate -> publish alerts and wait for the broker; then, at most every
`checkpoint_interval_ms`: checkpoint state and offsets in Redis -> ack. Order per alert: deliver
to (or dead-letter for) every endpoint -> ack, in offset order. docs/alerts.md says what that
guarantees.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections import deque
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

import faust
from faust.types import EventT, StreamT

from alerts.checkpoint import CheckpointStore, connect
from alerts.engine import Engine
from alerts.runner import BatchResult, RawRecord, RulesRunner
from alerts.webhooks.dead_letters import KafkaDeadLetters, Source
from alerts.webhooks.dispatcher import Dispatcher
from schemas.alert import AlertRecord
from schemas.dead_letter import dead_letter_headers
from schemas.errors import ContractError
from sightline.config import SightlineConfig
from sightline.config.alerts import RulesSettings

log = logging.getLogger(__name__)
RULES_STAGE = "alerts"  # a `dlq-stage` value of schemas/dead_letter.headers.schema.json
# Alerts held by the delivery agent beyond the largest endpoint backlog: a dead endpoint hits its
# own `max_pending` (and dead-letters) before it can exhaust the shared slots of the others.
EXTRA_IN_FLIGHT = 5_000


def broker_urls(bootstrap: str) -> list[str]:
    return [f"kafka://{host.strip()}" for host in bootstrap.split(",") if host.strip()]


@dataclass
class _Slot:
    event: EventT
    done: bool = False


@dataclass
class InOrderAcker:
    """Acks events per partition strictly in offset order, as their deliveries finish.

    Deliveries finish out of order (a slow endpoint, retries); committing past an unfinished
    one would lose it on a crash, so the committed offset only moves over finished prefixes.
    """

    stream: StreamT
    slots: dict[Any, deque[_Slot]] = field(default_factory=dict)

    def track(self, event: EventT) -> _Slot:
        slot = _Slot(event)
        self.slots.setdefault(event.message.tp, deque()).append(slot)
        return slot

    async def finish(self, slot: _Slot) -> None:
        slot.done = True
        queue = self.slots[slot.event.message.tp]
        while queue and queue[0].done:
            await self.stream.ack(queue.popleft().event)


class AlertsApp:
    """Builds the faust app from the configuration; `app.main()`/a Worker runs it."""

    def __init__(self, config: SightlineConfig, rules: RulesSettings) -> None:
        self.config = config
        settings = config.alerts
        topics = config.topics
        self.app = faust.App(
            settings.app_id,
            broker=broker_urls(config.kafka.bootstrap_servers),
            value_serializer="raw",
            key_serializer="raw",
            web_enabled=False,
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
        self.runner = RulesRunner(Engine(rules), store, topics.detections.name, topics.pos_events.name)
        self.alerts_topic = topics.alerts.name
        self.dlq_topic = topics.dead_letter.name
        self.dead_letters = KafkaDeadLetters(config.kafka, self.dlq_topic)
        self.dispatcher = Dispatcher.build(settings, self.redis, self.dead_letters)
        largest = max((w.max_pending for w in settings.webhooks), default=0)
        self.slots = asyncio.Semaphore(largest + EXTRA_IN_FLIGHT)
        self._rules_lock = asyncio.Lock()
        self._rules_stream: StreamT | None = None
        self._unacked: list[EventT] = []
        self._last_checkpoint = time.monotonic()
        if settings.run_rules:
            source = self.app.topic(topics.detections.name, topics.pos_events.name, value_serializer="raw")
            self.app.agent(source, name="rules", concurrency=1)(self._rules_agent)
            self.app.timer(max(settings.checkpoint_interval_ms / 1000, 0.05))(self._checkpoint_timer)
        if settings.run_webhooks and settings.webhooks:
            alerts = self.app.topic(self.alerts_topic, value_serializer="raw")
            self.app.agent(alerts, name="deliver", concurrency=1)(self._deliver_agent)
        self.app.on_partitions_revoked.connect(self._on_revoked)

    async def _on_revoked(self, app: faust.App, revoked: Any, **kwargs: Any) -> None:
        """Save what was applied, then drop in-memory state: the next owner reloads it."""
        async with self._rules_lock:
            if self._unacked:
                await self._checkpoint()
            self.runner.forget()

    # -- rules ---------------------------------------------------------------------------------
    async def _rules_agent(self, stream: StreamT) -> None:
        settings = self.config.alerts
        self._rules_stream = stream
        async for events in stream.noack_take(settings.batch_max, within=settings.batch_wait_ms / 1000):
            async with self._rules_lock:
                batch = [
                    RawRecord(e.message.topic, e.message.partition, e.message.offset, e.message.value)
                    for e in events
                ]
                result = await self.runner.process(batch)
                await self._publish(result)
                self._unacked.extend(events)
                if time.monotonic() - self._last_checkpoint >= settings.checkpoint_interval_ms / 1000:
                    await self._checkpoint()

    async def _publish(self, result: BatchResult) -> None:
        """Alerts (and rejected records) acknowledged by the broker before any checkpoint."""
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

    async def _checkpoint(self) -> None:
        await self.runner.checkpoint()
        stream, events = self._rules_stream, self._unacked
        self._unacked = []
        self._last_checkpoint = time.monotonic()
        if stream is not None:
            for event in events:
                await stream.ack(event)

    async def _checkpoint_timer(self) -> None:
        """An idle stream still gets its last records checkpointed and committed."""
        if self._unacked and not self._rules_lock.locked():
            async with self._rules_lock:
                await self._checkpoint()

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

    def _delivered(self, task: asyncio.Future[Any], slot: _Slot, acker: InOrderAcker) -> None:
        self.slots.release()
        if task.cancelled():
            return  # shutting down: not acked, so redelivered (and deduplicated) after restart
        if task.exception() is not None:
            log.error("delivery failed unexpectedly; not acking", exc_info=task.exception())
            return
        asyncio.ensure_future(acker.finish(slot))

    async def close(self) -> None:
        await self.dispatcher.aclose()
        self.dead_letters.close()
        await self.redis.aclose()


def run(config: SightlineConfig, rules: RulesSettings, loglevel: str = "warning") -> None:
    """Run until SIGINT/SIGTERM (blocking)."""
    from faust.worker import Worker

    alerts_app = AlertsApp(config, rules)
    worker = Worker(alerts_app.app, loglevel=loglevel, quiet=True)
    worker.execute_from_commandline()
