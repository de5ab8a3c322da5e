"""What the link checker does with events: check each new link, publish the verdict."""

from __future__ import annotations

from delinkcious.model.checker import LinkChecker
from delinkcious.model.events import Event, EventType
from delinkcious.platform.bus import Bus


class LinkCheckConsumer:
    """Checks the url of every ``link.added`` and publishes ``link.checked``.

    Links are keyed by url, so an update never changes a url and needs no new check.
    The verdict's event id is derived from the cause's, so a redelivered ``link.added``
    yields the same ``link.checked`` id, which the broker and the links service dedupe.
    """

    types = (EventType.LINK_ADDED,)

    def __init__(self, checker: LinkChecker, bus: Bus) -> None:
        self._checker = checker
        self._bus = bus

    async def handle(self, event: Event) -> None:
        result = await self._checker.check_link(event.url)
        await self._bus.publish(
            Event(
                id=f"{event.id}-checked",
                type=EventType.LINK_CHECKED,
                author=event.author,
                url=event.url,
                title=event.title,
                trace=event.trace,
                data={"status": result.status.value, "reason": result.reason},
            )
        )
