"""The outbox relay: moves events from a service's outbox table to the bus.

Events reach the outbox in the same transaction as the change that caused them, so an
acknowledged change always has its events; the relay sends them when the bus can take
them, and deletes each only after ``Bus.publish`` returned. Delivery is therefore at
least once, and consumers ignore ids they have already applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection
from typing import Protocol

from delinkcious.model.events import Event
from delinkcious.platform.bus import Bus

log = logging.getLogger("delinkcious.outbox")


class Outbox(Protocol):
    async def pending(self, limit: int, exclude: Collection[int]) -> list[tuple[int, Event]]:
        """Oldest unsent events first, skipping rows already being sent."""
        ...

    async def mark_sent(self, row_id: int) -> None: ...


class OutboxRelay:
    """Sends outbox rows concurrently (a slow consumer must not hold back the others).

    ``kick()`` wakes it at once after a local commit; ``poll_interval`` is the fallback
    that also picks up rows left by a crash. After a failed publish it backs off
    exponentially, so a broker outage costs one attempt per backoff, not a busy loop.
    """

    def __init__(
        self,
        outbox: Outbox,
        bus: Bus,
        *,
        poll_interval: float = 1.0,
        concurrency: int = 32,
        max_backoff: float = 5.0,
    ) -> None:
        self._outbox = outbox
        self._bus = bus
        self._poll = poll_interval
        self._slots = asyncio.Semaphore(concurrency)
        self._concurrency = concurrency
        self._max_backoff = max_backoff
        self._backoff = 0.0
        self._wake = asyncio.Event()
        self._in_flight: dict[int, asyncio.Task[None]] = {}
        self._runner: asyncio.Task[None] | None = None

    def kick(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._runner = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self, grace: float = 5.0) -> None:
        """Stop taking rows, give in-flight sends ``grace`` seconds, leave the rest queued."""
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        if self._in_flight:
            _, late = await asyncio.wait(list(self._in_flight.values()), timeout=grace)
            for task in late:
                task.cancel()

    async def _run(self) -> None:
        while True:
            if self._backoff:  # the bus is failing: wait it out, kicks or not
                await asyncio.sleep(self._backoff)
            self._wake.clear()
            try:
                await self._send_pending()
            except Exception:
                log.exception("reading the outbox failed; retrying")
                self._fail()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll)

    async def _send_pending(self) -> None:
        room = self._concurrency - len(self._in_flight)
        if room <= 0:
            return
        for row_id, event in await self._outbox.pending(room, self._in_flight.keys()):
            task = asyncio.create_task(self._send(row_id, event))
            self._in_flight[row_id] = task

    async def _send(self, row_id: int, event: Event) -> None:
        try:
            async with self._slots:
                await self._bus.publish(event)
                await self._outbox.mark_sent(row_id)
            self._backoff = 0.0
        except Exception as exc:
            log.warning(
                "publishing %s %s failed (%s); it stays in the outbox", event.type, event.id, exc
            )
            self._fail()
        finally:
            del self._in_flight[row_id]
            self._wake.set()  # room for the next rows

    def _fail(self) -> None:
        self._backoff = min(max(self._backoff * 2, 0.1), self._max_backoff)
