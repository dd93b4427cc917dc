"""Acks of the delivery agent, kept in offset order while deliveries finish out of order."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from faust.types import EventT, StreamT


@dataclass
class Slot:
    event: EventT
    done: bool = False


@dataclass
class InOrderAcker:
    """Acks events per partition strictly in offset order, as their deliveries finish.

    Deliveries finish out of order (a slow endpoint, retries); committing past an unfinished
    one would lose it on a crash, so the committed offset only moves over finished prefixes.
    Hand-written because faust's own commit stops at such a gap only once the partition has a
    committed offset above 0 (`faust.transport.consumer.Consumer._new_offset`).
    """

    stream: StreamT
    slots: dict[Any, deque[Slot]] = field(default_factory=dict)

    def track(self, event: EventT) -> Slot:
        slot = Slot(event)
        self.slots.setdefault(event.message.tp, deque()).append(slot)
        return slot

    async def finish(self, slot: Slot) -> None:
        slot.done = True
        queue = self.slots[slot.event.message.tp]
        while queue and queue[0].done:
            await self.stream.ack(queue.popleft().event)
