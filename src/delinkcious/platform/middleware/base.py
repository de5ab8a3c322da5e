"""``wrap``: one generated class per (Protocol, middleware), no code per method."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from delinkcious.platform.transport.introspection import Method, describe

P = TypeVar("P")
Call = Callable[..., Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Invocation:
    """One call going through a middleware: which service and method, with what."""

    service: str
    method: Method
    args: tuple[Any, ...]
    kwargs: dict[str, Any]

    def arguments(self) -> dict[str, Any]:
        """The arguments by parameter name (binds the call: use only when needed)."""
        bound = self.method.signature.bind(*self.args, **self.kwargs)
        return dict(bound.arguments)


# ``around(invocation, proceed)``: do something, call ``proceed()`` (the next layer) or not.
Around = Callable[[Invocation, Callable[[], Awaitable[Any]]], Awaitable[Any]]


def wrap(protocol: type[P], service: str, inner: P, around: Around) -> P:
    """An object implementing ``protocol`` whose every method runs through ``around``.

    Errors raised by ``inner`` pass through unchanged unless ``around`` itself decides
    otherwise; method names, docstrings and markers (``@idempotent``) are kept.
    """
    namespace: dict[str, Any] = {
        "__slots__": ("_inner",),
        "__repr__": lambda self: f"<{around.__name__} of {self._inner!r}>",
    }
    for method in describe(protocol).values():
        namespace[method.name] = _method(protocol, service, method, around)
    cls = type(f"{protocol.__name__}Via{around.__name__.title()}", (), namespace)
    wrapped = cls.__new__(cls)
    object.__setattr__(wrapped, "_inner", inner)
    return wrapped  # type: ignore[no-any-return]


def _method(protocol: type, service: str, method: Method, around: Around) -> Call:
    name = method.name

    @functools.wraps(getattr(protocol, name))
    async def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        target = getattr(self._inner, name)
        return await around(
            Invocation(service, method, args, kwargs), lambda: target(*args, **kwargs)
        )

    return call
