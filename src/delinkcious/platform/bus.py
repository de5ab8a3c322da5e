"""The event bus port, and its in-process adapter for the embedded shape.

Delivery is at least once: a handler that raises gets the event again later, so
handlers must be idempotent (they ignore an event id they have already applied).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from delinkcious.model.events import Event, EventType

log = logging.getLogger("delinkcious.bus")

Handler = Callable[[Event], Awaitable[None]]


class Bus(Protocol):
    async def publish(self, event: Event) -> None:
        """Return once the bus is responsible for the event: it will not be lost after this."""
        ...

    async def subscribe(
        self, consumer: str, types: Iterable[EventType], handler: Handler, concurrency: int = 8
    ) -> None:
        """Deliver every event of ``types`` to ``handler`` under the durable name ``consumer``.

        An event is acknowledged only after the handler returns; if it raises, the event
        is delivered again after a backoff.
        """
        ...

    async def close(self) -> None: ...


@dataclass
class _Subscription:
    consumer: str
    types: frozenset[EventType]
    handler: Handler
    slots: asyncio.Semaphore


class MemoryBus:
    """In-process bus: ``publish`` returns when every subscriber has handled the event.

    That is what makes it durable enough: the outbox relay marks an event sent only after
    ``publish`` returns, so a crash before then means the event is sent again at restart.
    A failing handler is retried with exponential backoff until it succeeds or the bus
    closes (then ``publish`` raises and the outbox keeps the event).
    """

    def __init__(self, initial_backoff: float = 0.05, max_backoff: float = 5.0) -> None:
        self._subscriptions: list[_Subscription] = []
        self._initial = initial_backoff
        self._max = max_backoff
        self._closed = asyncio.Event()

    async def subscribe(
        self, consumer: str, types: Iterable[EventType], handler: Handler, concurrency: int = 8
    ) -> None:
        self._subscriptions.append(
            _Subscription(consumer, frozenset(types), handler, asyncio.Semaphore(concurrency))
        )

    async def publish(self, event: Event) -> None:
        if self._closed.is_set():
            raise ConnectionError("the bus is closed")
        targets = [sub for sub in self._subscriptions if event.type in sub.types]
        await asyncio.gather(*(self._deliver(sub, event) for sub in targets))

    async def _deliver(self, sub: _Subscription, event: Event) -> None:
        delay = self._initial
        while True:
            async with sub.slots:
                try:
                    await sub.handler(event)
                    return
                except Exception:
                    log.exception(
                        "consumer %s failed on %s %s; redelivering",
                        sub.consumer,
                        event.type,
                        event.id,
                    )
            if self._closed.is_set():
                raise ConnectionError(f"the bus closed before {sub.consumer} handled {event.id}")
            try:
                await asyncio.wait_for(self._closed.wait(), delay)
            except TimeoutError:
                delay = min(delay * 2, self._max)

    async def close(self) -> None:
        self._closed.set()
