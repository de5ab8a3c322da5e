"""What the links service does with events from others: apply link check results."""

from __future__ import annotations

import logging

from delinkcious.links.store import LinkStore
from delinkcious.model.events import Event, EventType
from delinkcious.model.links import LinkStatus

log = logging.getLogger("delinkcious.links")

CONSUMER = "links"


class LinkCheckedConsumer:
    """Sets a link's status from ``link.checked``, once per event id (redeliveries are no-ops)."""

    types = (EventType.LINK_CHECKED,)

    def __init__(self, store: LinkStore) -> None:
        self._store = store

    async def handle(self, event: Event) -> None:
        try:
            status = LinkStatus(event.data["status"])
        except (KeyError, ValueError):
            log.warning("ignoring link.checked %s with no valid status", event.id)
            return
        await self._store.set_status(event.author, event.url, status, CONSUMER, event.id)
