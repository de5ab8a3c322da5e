"""Marks on Protocol methods that transports read (no behaviour of their own)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

IDEMPOTENT = "__delinkcious_idempotent__"


def idempotent(method: F) -> F:
    """Safe to retry: calling it twice has the effect of calling it once (reads, mostly)."""
    setattr(method, IDEMPOTENT, True)
    return method


def is_idempotent(method: Callable[..., Any]) -> bool:
    return bool(getattr(method, IDEMPOTENT, False))
