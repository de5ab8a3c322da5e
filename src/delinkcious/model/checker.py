"""Link checking: is a saved url reachable? The ``LinkChecker`` port."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from delinkcious.model.links import LinkStatus
from delinkcious.model.markers import idempotent


@dataclass(frozen=True, slots=True)
class CheckResult:
    """``valid`` or ``invalid``, with a short human reason (status code, refusal, timeout)."""

    status: LinkStatus
    reason: str


@runtime_checkable
class LinkChecker(Protocol):
    @idempotent
    async def check_link(self, url: str) -> CheckResult: ...
