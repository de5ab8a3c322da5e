"""The event bus adapter for the distributed shape: NATS JetStream.

Events are stored in one file-backed stream, on subject ``<prefix>.<event type>``, for a
week. ``publish`` returns only after JetStream has stored the event, and sends the event id
as ``Nats-Msg-Id``, so an outbox relay that retries after a lost ack does not store it
twice (within the stream's duplicate window).

Each ``subscribe`` is a durable pull consumer named after the subscriber: events published
while it is down wait in the stream, and replicas of a service that subscribe under the same
name share the work. The consumer's filter is the whole ``<prefix>.>`` and the wanted types
are picked here, because nats-server 2.9 can neither filter on several subjects nor change
a durable consumer's filter: a service can change its types without touching the consumer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import cast

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    Header,
    StorageType,
    StreamConfig,
)

from delinkcious.model.events import Event, EventType
from delinkcious.platform.bus import Handler

log = logging.getLogger("delinkcious.bus.nats")

DUPLICATE_WINDOW = 120.0
"""Seconds during which JetStream drops an event id it has already stored."""
MAX_AGE = 7 * 24 * 3600.0
"""Seconds an event stays in the stream: how long a consumer may be down without loss."""

_RECOVERY_BACKOFF = (0.2, 5.0)
"""First and longest pause of a fetch loop after a broker error: short, to recover quickly."""


@dataclass
class _Subscription:
    consumer: str
    types: frozenset[EventType]
    handler: Handler
    concurrency: int
    pull: JetStreamContext.PullSubscription
    fetching: asyncio.Task[None] | None = None
    in_flight: set[asyncio.Task[None]] = field(default_factory=set)


class NatsBus:
    """A ``Bus`` on NATS JetStream; build it with ``await NatsBus.connect(url)``."""

    def __init__(
        self,
        nc: Client,
        stream: str,
        subject_prefix: str,
        *,
        publish_timeout: float,
        ack_wait: float,
        fetch_wait: float,
        initial_backoff: float,
        max_backoff: float,
        close_timeout: float,
    ) -> None:
        self._nc = nc
        self._js = nc.jetstream()
        self._stream = stream
        self._prefix = subject_prefix
        self._publish_timeout = publish_timeout
        self._ack_wait = ack_wait
        self._fetch_wait = fetch_wait
        self._initial_backoff = initial_backoff
        self._max_backoff = max_backoff
        self._close_timeout = close_timeout
        self._subscriptions: list[_Subscription] = []
        self._closing = False

    @classmethod
    async def connect(
        cls,
        url: str,
        stream: str = "DELINKCIOUS",
        subject_prefix: str = "delinkcious.events",
        *,
        connect_timeout: float = 30.0,
        reconnect_wait: float = 1.0,
        publish_timeout: float = 5.0,
        ack_wait: float = 30.0,
        fetch_wait: float = 5.0,
        initial_backoff: float = 0.5,
        max_backoff: float = 60.0,
        close_timeout: float = 10.0,
    ) -> NatsBus:
        """Connect and make sure the stream exists, waiting up to ``connect_timeout`` seconds.

        The wait lets a service start before its broker (as pods do): until the deadline the
        server is tried every ``reconnect_wait`` seconds, and JetStream is given time to come
        up. Once connected, the client reconnects forever: a broker outage delays events, it
        does not stop the service.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + connect_timeout
        nc = Client()

        async def disconnected() -> None:
            if not (nc.is_closed or nc.is_draining):  # a close of ours is no outage
                log.warning("disconnected from NATS; reconnecting")

        try:
            await asyncio.wait_for(
                nc.connect(
                    url,
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    # Seconds, used as floats, though annotated int (nats-io/nats.py#1000).
                    reconnect_time_wait=cast(int, reconnect_wait),
                    connect_timeout=cast(int, min(2.0, connect_timeout)),
                    error_cb=_log_error,
                    disconnected_cb=disconnected,
                    reconnected_cb=_log_reconnected,
                ),
                connect_timeout,
            )
        except TimeoutError as exc:
            await nc.close()
            raise ConnectionError(
                f"NATS at {url} is not reachable after {connect_timeout} s"
            ) from exc
        bus = cls(
            nc,
            stream,
            subject_prefix,
            publish_timeout=publish_timeout,
            ack_wait=ack_wait,
            fetch_wait=fetch_wait,
            initial_backoff=initial_backoff,
            max_backoff=max_backoff,
            close_timeout=close_timeout,
        )
        delay = _RECOVERY_BACKOFF[0]
        while True:
            try:
                await bus._ensure_stream()
                return bus
            except (nats.js.errors.ServiceUnavailableError, TimeoutError) as exc:
                if loop.time() + delay > deadline:
                    await nc.close()
                    raise ConnectionError(
                        f"JetStream at {url} is not available after {connect_timeout} s"
                    ) from exc
            except BaseException:
                await nc.close()
                raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RECOVERY_BACKOFF[1])

    async def _ensure_stream(self) -> None:
        """Create the stream unless it exists; refuse one that does not hold our subjects."""
        subjects = f"{self._prefix}.>"
        try:
            info = await self._js.stream_info(self._stream)
        except nats.js.errors.NotFoundError:
            await self._js.add_stream(
                StreamConfig(
                    name=self._stream,
                    subjects=[subjects],
                    storage=StorageType.FILE,
                    duplicate_window=DUPLICATE_WINDOW,
                    max_age=MAX_AGE,
                )
            )
            return
        if subjects not in (info.config.subjects or []):
            raise ValueError(
                f"stream {self._stream} exists with subjects {info.config.subjects}, not {subjects}"
            )

    async def _restore_stream(self) -> None:
        """Recreate a stream that a broker lost (it came back with an empty store)."""
        try:
            await self._ensure_stream()
        except (nats.errors.Error, TimeoutError) as exc:
            log.warning("stream %s cannot be restored yet (%r)", self._stream, exc)

    async def publish(self, event: Event) -> None:
        """Store the event in JetStream; raise ``ConnectionError`` unless it acknowledged."""
        subject = f"{self._prefix}.{event.type.value}"
        try:
            ack = await self._js.publish(
                subject,
                event.to_json(),
                timeout=self._publish_timeout,
                stream=self._stream,
                headers={Header.MSG_ID.value: event.id},
            )
        except (nats.errors.Error, TimeoutError, OSError) as exc:
            if isinstance(exc, nats.js.errors.NoStreamResponseError):
                await self._restore_stream()
            raise ConnectionError(
                f"JetStream did not store {event.type} {event.id}: {exc!r}"
            ) from exc
        if ack.duplicate:
            log.info("event %s was already in stream %s", event.id, self._stream)

    async def subscribe(
        self, consumer: str, types: Iterable[EventType], handler: Handler, concurrency: int = 8
    ) -> None:
        """Bind the durable consumer ``consumer`` (creating it) and start fetching for it."""
        if self._closing:
            raise ConnectionError("the bus is closed")
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        await self._ensure_consumer(consumer, concurrency)
        pull = await self._js.pull_subscribe_bind(durable=consumer, stream=self._stream)
        sub = _Subscription(consumer, frozenset(types), handler, concurrency, pull)
        sub.fetching = asyncio.create_task(self._fetch_loop(sub), name=f"nats-fetch-{consumer}")
        self._subscriptions.append(sub)

    async def _ensure_consumer(self, consumer: str, concurrency: int) -> None:
        """Create the durable consumer, or update it in place: the call is idempotent.

        ``max_ack_pending`` is the server's side of the ``concurrency`` cap. It counts every
        subscriber under this name together: replicas of a service share it.
        """
        await self._js.add_consumer(
            self._stream,
            ConsumerConfig(
                durable_name=consumer,
                deliver_policy=DeliverPolicy.ALL,
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=self._ack_wait,
                max_deliver=-1,
                max_ack_pending=concurrency,
                filter_subject=f"{self._prefix}.>",
            ),
        )

    async def _fetch_loop(self, sub: _Subscription) -> None:
        """Keep at most ``concurrency`` handlers running; survive broker outages and restarts."""
        delay = _RECOVERY_BACKOFF[0]
        while True:
            free = sub.concurrency - len(sub.in_flight)
            if free <= 0:
                await asyncio.wait(sub.in_flight, return_when=asyncio.FIRST_COMPLETED)
                continue
            try:
                messages = await sub.pull.fetch(free, timeout=self._fetch_wait)
            except TimeoutError:  # nothing to do, the broker is away, or it lost our consumer
                await self._check_consumer(sub)
                continue
            except Exception as exc:
                log.warning(
                    "consumer %s cannot fetch (%r); retrying in %.1f s", sub.consumer, exc, delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RECOVERY_BACKOFF[1])
                await self._recover(sub)
                continue
            delay = _RECOVERY_BACKOFF[0]
            for msg in messages:
                task = asyncio.create_task(self._handle(sub, msg))
                sub.in_flight.add(task)
                task.add_done_callback(sub.in_flight.discard)

    async def _check_consumer(self, sub: _Subscription) -> None:
        """Restore the consumer if the broker lost it: fetching from it only times out."""
        try:
            await self._js.consumer_info(self._stream, sub.consumer, timeout=self._fetch_wait)
        except nats.js.errors.NotFoundError:
            log.warning("consumer %s is gone from the broker; recreating it", sub.consumer)
            await self._recover(sub)
        except (nats.errors.Error, TimeoutError):
            pass  # the broker is away: the next fetch waits for it

    async def _recover(self, sub: _Subscription) -> None:
        """Recreate the stream and the consumer if the broker lost them."""
        try:
            await self._ensure_stream()
            await self._ensure_consumer(sub.consumer, sub.concurrency)
        except Exception as exc:
            log.warning("consumer %s cannot be restored yet (%r)", sub.consumer, exc)

    async def _handle(self, sub: _Subscription, msg: Msg) -> None:
        """Ack after the handler succeeds, nak with backoff if it fails, term what is garbage.

        An ack that is lost (broker away) only means the event comes again after
        ``ack_wait``: handlers are idempotent.
        """
        try:
            try:
                event = Event.from_json(msg.data)
            except Exception:
                log.exception(
                    "consumer %s dropped a malformed message on %s", sub.consumer, msg.subject
                )
                await msg.term()
                return
            if event.type not in sub.types:
                await msg.ack()
                return
            try:
                await sub.handler(event)
            except Exception:
                attempt = msg.metadata.num_delivered
                delay = min(self._initial_backoff * 2 ** (attempt - 1), self._max_backoff)
                log.exception(
                    "consumer %s failed on %s %s (delivery %d); redelivering in %.1f s",
                    sub.consumer,
                    event.type,
                    event.id,
                    attempt,
                    delay,
                )
                await msg.nak(delay=delay)
                return
            await msg.ack()
        except nats.errors.Error as exc:
            log.warning("consumer %s could not settle a message (%r)", sub.consumer, exc)

    async def ping(self) -> None:
        """A round trip to the server: the readiness check of every process using the bus."""
        if not self._nc.is_connected:
            raise ConnectionError("not connected to NATS")
        await self._nc.flush(timeout=1)

    async def close(self) -> None:
        """Stop fetching, give running handlers ``close_timeout`` seconds, then disconnect.

        Handlers still running then are cancelled: their events were not acked, so the
        broker delivers them again after ``ack_wait``.
        """
        if self._closing:
            return
        self._closing = True
        loops = [sub.fetching for sub in self._subscriptions if sub.fetching is not None]
        for loop_task in loops:
            loop_task.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        running = {task for sub in self._subscriptions for task in sub.in_flight}
        if running:
            _, late = await asyncio.wait(running, timeout=self._close_timeout)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        for sub in self._subscriptions:
            with contextlib.suppress(nats.errors.Error):
                await sub.pull.unsubscribe()
        try:
            await self._nc.drain()  # flushes the last acks before closing
        except nats.errors.Error:
            await self._nc.close()


async def _log_error(exc: Exception) -> None:
    log.warning("NATS connection error: %r", exc)


async def _log_reconnected() -> None:
    log.info("reconnected to NATS")
