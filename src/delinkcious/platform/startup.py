"""Starting a service before its dependencies: wait with backoff, then fail in one line."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("delinkcious.startup")


class DependencyUnavailable(RuntimeError):
    """A dependency did not come up within the start-up timeout."""


async def wait_for(
    name: str,
    probe: Callable[[], Awaitable[Any]],
    within: float,
    *,
    first_delay: float = 0.1,
    max_delay: float = 5.0,
) -> None:
    """Retry ``probe`` with exponential backoff until it succeeds or ``within`` seconds pass.

    On Kubernetes the database or broker may start after the service; a service that
    crashed at once would only add restart back-off to the wait.
    """
    deadline = time.monotonic() + within
    delay = first_delay
    while True:
        try:
            await probe()
            return
        except Exception as exc:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DependencyUnavailable(
                    f"{name} is not reachable after {within:g} s: {type(exc).__name__}: {exc}"
                ) from exc
            log.warning("waiting for %s (%s: %s)", name, type(exc).__name__, exc)
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 2, max_delay)
