"""Readiness: can this process do its work now? Each dependency registers a check.

``/healthz`` says the process is alive (restart it if not); ``/readyz`` says whether its
database, broker, cache and the services it calls answer (send it no traffic if not).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

Check = Callable[[], Awaitable[object]]


class Readiness:
    def __init__(self, timeout: float = 2.0) -> None:
        self._checks: dict[str, Check] = {}
        self._timeout = timeout

    def add(self, name: str, check: Check) -> None:
        self._checks[name] = check

    async def failures(self) -> dict[str, str]:
        """Each failing dependency with its reason; empty when all answer (run in parallel)."""
        names = list(self._checks)
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
