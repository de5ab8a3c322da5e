"""Readiness: can this process do its work now? Each dependency registers a check.

``/healthz`` says the process is alive (restart it if not); ``/readyz`` says whether its
database, broker, cache and the services it calls are ready: the whole truth, for people
and monitoring. ``/readyz?scope=local`` leaves the called services out: what a load
balancer should ask, so that one service down does not take its callers out of rotation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

Check = Callable[[], Awaitable[object]]


class Readiness:
    def __init__(self, timeout: float = 2.0) -> None:
        self._checks: dict[str, Check] = {}
        self._remote: set[str] = set()
        self._timeout = timeout

    def add(self, name: str, check: Check, *, local: bool = True) -> None:
        """``local``: a store of this process's own (its database, broker, cache), as
        opposed to another service it calls."""
        self._checks[name] = check
        if not local:
            self._remote.add(name)

    async def failures(self, *, local_only: bool = False) -> dict[str, str]:
        """Each failing dependency with its reason; empty when all answer (run in parallel)."""
        names = [name for name in self._checks if not (local_only and name in self._remote)]
        outcomes = await asyncio.gather(
            *(asyncio.wait_for(self._checks[name](), self._timeout) for name in names),
            return_exceptions=True,
        )
        return {
            name: "timed out"
            if isinstance(outcome, TimeoutError)
            else f"{type(outcome).__name__}: {outcome}"
            for name, outcome in zip(names, outcomes, strict=True)
            if isinstance(outcome, BaseException)
        }
