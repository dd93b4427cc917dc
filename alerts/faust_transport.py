"""faust, adapted: a consumer that always reads committed records with a cheaper fetch loop, and
aiokafka's reconnect warnings said once through the health state instead of several a second.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import aiokafka
import faust
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka

from alerts.metrics import HEALTH

# What aiokafka says, at WARNING or above, when it cannot reach the broker.
UNREACHABLE = re.compile(
    r"connect|NodeNotReady|not ready|coordinator dead|Coordinator Request failed|update metadata"
    r"|session expired|Failed fetch messages",
    re.IGNORECASE,
)


class _KafkaOutageFilter(logging.Filter):
    """aiokafka logs every failed reconnect (several a second while the broker is away): say it
    once through HEALTH instead, and keep its warnings quiet until the broker answers again."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        if UNREACHABLE.search(record.getMessage()):
            HEALTH.degraded("kafka", record.getMessage())
            return False
        return record.levelno >= logging.ERROR or HEALTH.is_up("kafka")


def quiet_aiokafka() -> None:
    """The filter on every aiokafka logger (a logger's filters do not apply to its children)."""
    flt = _KafkaOutageFilter()
    names = [n for n in logging.root.manager.loggerDict if n == "aiokafka" or n.startswith("aiokafka.")]
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _KafkaOutageFilter) for f in logger.filters):
            logger.addFilter(flt)


class CommittedConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """faust reads `read_committed` only in its own exactly-once mode; the rules must always:
    a batch an exactly-once inference worker aborted is never applied."""

    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        consumer._isolation_level = "read_committed"  # read by AIOKafkaConsumer.start()
        return consumer


class CommittedConsumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return CommittedConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover (runs in the app)
        """faust's fetch loop (`faust.transport.consumer.Consumer._drain_messages`, 0.15), racing
        a flow stop (a rebalance) once per fetched batch instead of once per message.

        faust hands each message to the conductor inside `Service.wait_first(callback(message),
        suspend_flow.wait())`, which makes two tasks, an `asyncio.wait` and a cancellation per
        message: in the benchmark's profile the largest single cost of faust's share of the
        processor's one core (docs/alerts.md, "Where the processor's time goes"). Racing the
        whole batch keeps what the race is for: a callback blocked on a full stream buffer is
        released when a rebalance stops the flow (the rest of the batch is dropped; the fetch
        position is reset to the committed offset after the rebalance anyway).
        """
        callback = self.callback
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        acks_enabled_for = self.app.topics.acks_enabled_for

        async def deliver(batch: Any) -> None:
            since_yield = 0
            async for tp, message in batch:
                since_yield += 1
                if since_yield > 100:  # as faust: let other tasks run inside a long batch
                    await asyncio.sleep(0)
                    since_yield = 0
                offset = message.offset
                r_offset = get_read_offset(tp)
                if r_offset is None or offset >= r_offset:
                    gap = offset - (r_offset or 0)
                    if gap > 1 and r_offset and acks_enabled_for(message.topic):
                        await self._add_gap(tp, r_offset + 1, offset)
                    if self._commit_every is not None and self._n_acked >= self._commit_every:
                        self._n_acked = 0
                        await self.commit()
                    await callback(message)
                    set_read_offset(tp, offset)

        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                self.diag.set_flag(CONSUMER_FETCHING)
                batch = self.getmany(timeout=1.0)
                await self.sleep(0)
                if not self.should_stop:
                    await self.wait_first(deliver(batch), self.suspend_flow.wait())
                self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)


class CommittedTransport(faust_aiokafka.Transport):
    Consumer = CommittedConsumer


class CommittedApp(faust.App):
    def _new_transport(self) -> Any:
        return CommittedTransport(self.conf.broker_consumer, self)
