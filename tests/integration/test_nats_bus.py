"""Contract of NatsBus on a real NATS JetStream server.

The tests start their own nats-server processes (never the shared one on 4222): one for the
module, and a private one for each test that stops or delays its broker. Every test uses its
own stream and subject prefix, so none sees another's events.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest

from delinkcious.model.events import Event, EventType
from delinkcious.platform.nats_bus import DUPLICATE_WINDOW, MAX_AGE, NatsBus
from tests.support.nats import NatsServer

FAST: dict[str, Any] = {
    "connect_timeout": 5.0,
    "reconnect_wait": 0.2,
    "publish_timeout": 1.0,
    "fetch_wait": 1.0,
    "initial_backoff": 0.05,
    "max_backoff": 0.5,
    "close_timeout": 2.0,
}


@pytest.fixture(scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[NatsServer]:
    nats_server = NatsServer(tmp_path_factory.mktemp("nats"))
    nats_server.start()
    await nats_server.ready()
    yield nats_server
    nats_server.stop()


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A server for this test alone, not started yet."""
    nats_server = NatsServer(tmp_path)
    yield nats_server
    nats_server.stop()


@pytest.fixture
def names() -> tuple[str, str]:
    """A stream name and subject prefix that no other test uses."""
    unique = uuid.uuid4().hex[:12]
    return f"T{unique}", f"t{unique}.events"


OpenBus = Callable[..., Awaitable[NatsBus]]


@pytest.fixture
async def open_bus(server: NatsServer, names: tuple[str, str]) -> AsyncIterator[OpenBus]:
    buses: list[NatsBus] = []

    async def open_(url: str | None = None, **options: Any) -> NatsBus:
        stream, prefix = names
        bus = await NatsBus.connect(url or server.url, stream, prefix, **{**FAST, **options})
        buses.append(bus)
        return bus

    yield open_
    for bus in buses:
        await bus.close()


class Recorder:
    """A handler that records what it gets; it fails the first ``failures`` tries of each id."""

    def __init__(self, failures: int = 0) -> None:
        self.events: list[Event] = []
        self.times: list[float] = []
        self._failures = failures
        self._tries: Counter[str] = Counter()
        self._changed = asyncio.Condition()

    async def __call__(self, event: Event) -> None:
        self._tries[event.id] += 1
        self.times.append(time.monotonic())
        failing = self._tries[event.id] <= self._failures
        if not failing:
            self.events.append(event)
        async with self._changed:
            self._changed.notify_all()
        if failing:
            raise RuntimeError(f"handler failure {self._tries[event.id]} on {event.id}")

    @property
    def tries(self) -> Counter[str]:
        return self._tries

    def counts(self) -> Counter[str]:
        return Counter(event.id for event in self.events)

    async def received(self, ids: set[str], within: float = 5.0) -> None:
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: ids <= set(self.counts()))


async def settled(url: str, stream: str, *consumers: str, within: float = 5.0) -> None:
    """Wait until the broker has nothing left to deliver or redeliver to these consumers."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        async with asyncio.timeout(within):
            while True:
                infos = [await js.consumer_info(stream, consumer) for consumer in consumers]
                if all(info.num_ack_pending == 0 and info.num_pending == 0 for info in infos):
                    return
                await asyncio.sleep(0.05)
    finally:
        await nc.close()


async def publish_until_stored(bus: NatsBus, event: Event, within: float = 10.0) -> None:
    """What an outbox relay does: retry the same event until the bus takes it."""
    async with asyncio.timeout(within):
        while True:
            try:
                await bus.publish(event)
                return
            except ConnectionError:
                await asyncio.sleep(0.2)


async def lose_the_store(nats_server: NatsServer) -> None:
    nats_server.stop()
    shutil.rmtree(nats_server.store)
    nats_server.start()
    await nats_server.ready()


def link_event(n: int, type_: EventType = EventType.LINK_ADDED) -> Event:
    return Event(type=type_, author="alice", url=f"https://example.com/{n}", title=f"link {n}")


async def test_connect_creates_the_stream_once(
    open_bus: OpenBus, server: NatsServer, names: tuple[str, str]
) -> None:
    await open_bus()
    await open_bus()  # the stream exists already: connecting again must not fail
    stream, prefix = names
    nc = await nats.connect(server.url)
    try:
        config = (await nc.jetstream().stream_info(stream)).config
    finally:
        await nc.close()
    assert config.subjects == [f"{prefix}.>"]
    assert config.storage == "file"
    assert config.duplicate_window == DUPLICATE_WINDOW
    assert config.max_age == MAX_AGE


async def test_a_published_event_arrives_once_with_every_field(
    open_bus: OpenBus, server: NatsServer, names: tuple[str, str]
) -> None:
    bus = await open_bus()
    news = Recorder()
    await bus.subscribe("news", [EventType.LINK_UPDATED], news)
    event = Event(
        type=EventType.LINK_UPDATED,
        author="alice",
        url="https://example.com/ünïcode?q=1",
        title="A title",
        tags=("python", "nats"),
        time=dt.datetime(2026, 2, 3, 4, 5, 6, 789012, tzinfo=dt.UTC),
        trace={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
        data={"url_changed": True, "previous": {"url": "https://example.com/old"}},
    )

    await bus.publish(event)

    await news.received({event.id})
    await settled(server.url, names[0], "news")
    assert news.events == [event]


async def test_a_durable_consumer_gets_what_was_published_while_it_was_away(
    open_bus: OpenBus, server: NatsServer, names: tuple[str, str]
) -> None:
    publisher = await open_bus()
    first_run = Recorder()
    consumer = await open_bus()
    await consumer.subscribe("news", [EventType.LINK_ADDED], first_run)
    before = link_event(0)
    await publisher.publish(before)
    await first_run.received({before.id})
    await settled(server.url, names[0], "news")
    await consumer.close()

    while_away = [link_event(n) for n in range(1, 4)]
    for event in while_away:
        await publisher.publish(event)
    second_run = Recorder()
    await (await open_bus()).subscribe("news", [EventType.LINK_ADDED], second_run)

    await second_run.received({event.id for event in while_away})
    await settled(server.url, names[0], "news")
    assert second_run.counts() == Counter({event.id: 1 for event in while_away})
    assert first_run.counts() == Counter({before.id: 1})


async def test_a_failing_handler_gets_the_event_again_after_a_growing_backoff(
    open_bus: OpenBus, server: NatsServer, names: tuple[str, str]
) -> None:
    bus = await open_bus(initial_backoff=0.2, max_backoff=1.0)
    flaky = Recorder(failures=2)
    await bus.subscribe("news", [EventType.LINK_ADDED], flaky)
    event = link_event(1)

    await bus.publish(event)

    await flaky.received({event.id})
    await settled(server.url, names[0], "news")
    assert flaky.tries == Counter({event.id: 3})
    assert flaky.counts() == Counter({event.id: 1})
    first_gap, second_gap = (b - a for a, b in zip(flaky.times, flaky.times[1:], strict=False))
    assert first_gap >= 0.18
    assert second_gap >= 0.38


async def test_every_consumer_name_gets_every_event(
    open_bus: OpenBus, server: NatsServer, names: tuple[str, str]
) -> None:
    bus = await open_bus()
    news, checker = Recorder(), Recorder()
    await bus.subscribe("news", [EventType.LINK_ADDED], news)
    await (await open_bus()).subscribe("checker", [EventType.LINK_ADDED], checker)
    events = [link_event(n) for n in range(5)]

    for event in events:
        await bus.publish(event)

    ids = {event.id for event in events}
    await news.received(ids)
    await checker.received(ids)
    await settled(server.url, names[0], "news", "checker")
    assert news.counts() == checker.counts() == Counter(dict.fromkeys(ids, 1))


async def test_a_consumer_gets_only_the_types_it_asked_for(
    open_bus: OpenBus, server: NatsServer, names: tuple[str, str]
) -> None:
    bus = await open_bus()
    links, news = Recorder(), Recorder()
    await bus.subscribe("links", [EventType.LINK_CHECKED], links)
    await bus.subscribe("news", [EventType.LINK_ADDED, EventType.LINK_DELETED], news)
    events = {type_: link_event(1, type_) for type_ in EventType}

    for event in events.values():
        await bus.publish(event)

    await links.received({events[EventType.LINK_CHECKED].id})
    await news.received({events[EventType.LINK_ADDED].id, events[EventType.LINK_DELETED].id})
    await settled(server.url, names[0], "links", "news")
    assert [event.type for event in links.events] == [EventType.LINK_CHECKED]
    assert sorted(event.type for event in news.events) == [
        EventType.LINK_ADDED,
        EventType.LINK_DELETED,
    ]


async def test_publishing_an_event_id_twice_stores_and_delivers_it_once(
    open_bus: OpenBus, server: NatsServer, names: tuple[str, str]
) -> None:
    bus = await open_bus()
    news = Recorder()
    await bus.subscribe("news", [EventType.LINK_ADDED], news)
    event, other = link_event(1), link_event(2)

    await bus.publish(event)
    await bus.publish(event)  # an outbox relay retrying after a lost ack
    await bus.publish(other)

    await news.received({event.id, other.id})
    await settled(server.url, names[0], "news")
    assert news.counts() == Counter({event.id: 1, other.id: 1})
    nc = await nats.connect(server.url)
    try:
        assert (await nc.jetstream().stream_info(names[0])).state.messages == 2
    finally:
        await nc.close()


async def test_no_more_than_concurrency_handlers_run_at_once(
    open_bus: OpenBus, server: NatsServer, names: tuple[str, str]
) -> None:
    bus = await open_bus()
    running, peak, done = 0, 0, Recorder()

    async def slow(event: Event) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.15)
        running -= 1
        await done(event)

    await bus.subscribe("checker", [EventType.LINK_ADDED], slow, concurrency=3)
    events = [link_event(n) for n in range(12)]
    for event in events:
        await bus.publish(event)

    await done.received({event.id for event in events})
    await settled(server.url, names[0], "checker")
    assert peak == 3
    assert done.counts() == Counter({event.id: 1 for event in events})


async def test_a_malformed_message_is_dropped_not_redelivered_forever(
    open_bus: OpenBus, server: NatsServer, names: tuple[str, str]
) -> None:
    bus = await open_bus()
    news = Recorder()
    await bus.subscribe("news", [EventType.LINK_ADDED], news)
    stream, prefix = names
    nc = await nats.connect(server.url)
    try:
        js = nc.jetstream()
        await js.publish(f"{prefix}.link.added", b"{not json", stream=stream)
        await js.publish(f"{prefix}.link.added", b'{"type": "link.exploded"}', stream=stream)
    finally:
        await nc.close()
    good = link_event(1)

    await bus.publish(good)

    await news.received({good.id})
    await settled(server.url, stream, "news")
    assert news.counts() == Counter({good.id: 1})


async def test_close_waits_for_running_handlers_but_not_forever(
    open_bus: OpenBus, server: NatsServer, names: tuple[str, str]
) -> None:
    bus = await open_bus(close_timeout=1.0)
    started = {"quick": asyncio.Event(), "stuck": asyncio.Event()}
    finished: list[str] = []

    async def quick(event: Event) -> None:
        started["quick"].set()
        await asyncio.sleep(0.3)
        finished.append(event.id)

    async def stuck(event: Event) -> None:
        started["stuck"].set()
        await asyncio.Event().wait()

    await bus.subscribe("quick", [EventType.LINK_ADDED], quick)
    await bus.subscribe("stuck", [EventType.LINK_ADDED], stuck)
    event = link_event(1)
    await bus.publish(event)
    async with asyncio.timeout(5):
        await started["quick"].wait()
        await started["stuck"].wait()

    closing = time.monotonic()
    await bus.close()

    assert time.monotonic() - closing < 2.0
    assert finished == [event.id]
    await settled(server.url, names[0], "quick")
    nc = await nats.connect(server.url)
    try:
        stuck_state = await nc.jetstream().consumer_info(names[0], "stuck")
    finally:
        await nc.close()
    assert stuck_state.num_ack_pending == 1  # not acked: it will be delivered again
    with pytest.raises(ConnectionError):
        await bus.publish(link_event(2))


async def test_connect_waits_for_a_late_broker_and_gives_up_at_its_deadline(
    own_server: NatsServer, names: tuple[str, str]
) -> None:
    stream, prefix = names
    started = time.monotonic()
    with pytest.raises(ConnectionError):
        await NatsBus.connect(own_server.url, stream, prefix, **{**FAST, "connect_timeout": 1.0})
    assert time.monotonic() - started < 3.0

    connecting = asyncio.create_task(NatsBus.connect(own_server.url, stream, prefix, **FAST))
    await asyncio.sleep(0.5)
    assert not connecting.done()
    own_server.start()
    bus = await asyncio.wait_for(connecting, 10.0)
    try:
        news = Recorder()
        await bus.subscribe("news", [EventType.LINK_ADDED], news)
        event = link_event(1)
        await bus.publish(event)
        await news.received({event.id})
    finally:
        await bus.close()


async def test_a_broker_restart_loses_no_acknowledged_event_and_duplicates_none(
    own_server: NatsServer, names: tuple[str, str]
) -> None:
    stream, prefix = names
    own_server.start()
    await own_server.ready()
    publisher = await NatsBus.connect(own_server.url, stream, prefix, **FAST)
    consumer = await NatsBus.connect(own_server.url, stream, prefix, **FAST)
    news = Recorder()
    acknowledged: list[Event] = []
    try:
        await consumer.subscribe("news", [EventType.LINK_ADDED], news)
        for n in range(5):
            event = link_event(n)
            await publisher.publish(event)
            acknowledged.append(event)
        await news.received({event.id for event in acknowledged})
        await settled(own_server.url, stream, "news")

        own_server.stop()
        unsent = [link_event(n) for n in range(5, 8)]
        for event in unsent:
            started = time.monotonic()
            with pytest.raises(ConnectionError):
                await publisher.publish(event)
            assert time.monotonic() - started < FAST["publish_timeout"] + 1.0

        own_server.start()
        await own_server.ready()
        outbox = [*unsent, *(link_event(n) for n in range(8, 13))]
        for event in outbox:
            await publish_until_stored(publisher, event)
            acknowledged.append(event)

        await news.received({event.id for event in acknowledged}, within=10.0)
        await settled(own_server.url, stream, "news")
        assert news.counts() == Counter({event.id: 1 for event in acknowledged})
    finally:
        await publisher.close()
        await consumer.close()


async def test_publish_recreates_a_stream_the_broker_lost(
    own_server: NatsServer, names: tuple[str, str]
) -> None:
    stream, prefix = names
    own_server.start()
    await own_server.ready()
    publisher = await NatsBus.connect(own_server.url, stream, prefix, **FAST)
    try:
        await publisher.publish(link_event(1))
        await lose_the_store(own_server)

        await publish_until_stored(publisher, link_event(2))
    finally:
        await publisher.close()
    nc = await nats.connect(own_server.url)
    try:
        assert (await nc.jetstream().stream_info(stream)).state.messages == 1
    finally:
        await nc.close()


async def test_a_subscriber_recreates_a_consumer_the_broker_lost(
    own_server: NatsServer, names: tuple[str, str]
) -> None:
    stream, prefix = names
    own_server.start()
    await own_server.ready()
    consumer = await NatsBus.connect(own_server.url, stream, prefix, **FAST)
    news = Recorder()
    try:
        await consumer.subscribe("news", [EventType.LINK_ADDED], news)
        await lose_the_store(own_server)
        publisher = await NatsBus.connect(own_server.url, stream, prefix, **FAST)
        try:
            event = link_event(1)
            await publisher.publish(event)
        finally:
            await publisher.close()

        await news.received({event.id}, within=10.0)
        await settled(own_server.url, stream, "news")
        assert news.counts() == Counter({event.id: 1})
    finally:
        await consumer.close()
