"""``wrap``: one generated class per (Protocol, middleware chain), no code per method."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar, cast

from delinkcious.platform.transport.introspection import Method, describe, protocol_class

if TYPE_CHECKING:
    from typing_extensions import TypeForm

P = TypeVar("P")
Call = Callable[..., Awaitable[Any]]


class Invocation(NamedTuple):
    """One call going through a middleware: which service and method, with what.

    Immutable, since every layer of a chain sees the same one; a named tuple rather than
    a frozen dataclass, which costs twice as much to build, once per call.
    """

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


def wrap(protocol: TypeForm[P], service: str, inner: P, *arounds: Around) -> P:
    """An object implementing ``protocol`` whose every method runs through ``arounds``.

    ``wrap(P, "links", core, logging, metrics, tracing)`` is
    ``tracing(metrics(logging(core)))``: the first is innermost. One class and one
    ``Invocation`` per call serve the whole chain, rather than an object per layer, so each
    layer costs only its own coroutine. Errors raised by ``inner`` pass through unchanged
    unless an ``around`` itself decides otherwise; method names, docstrings and markers
    (``@idempotent``) are kept.
    """
    if not arounds:
        raise ValueError("wrap needs at least one around")
    interface = protocol_class(protocol)
    names = [around.__name__ for around in reversed(arounds)]
    namespace: dict[str, Any] = {
        "__slots__": ("_inner",),
        "__repr__": lambda self: f"<{' of '.join(names)} of {self._inner!r}>",
    }
    for method in describe(interface).values():
        namespace[method.name] = _method(interface, service, method, arounds)
    title = "".join(name.title() for name in names)
    cls: type[object] = type(f"{interface.__name__}Via{title}", (), namespace)
    wrapped = cls.__new__(cls)
    object.__setattr__(wrapped, "_inner", inner)
    return cast(P, wrapped)  # built from the Protocol's own methods, so it implements it


def _method(protocol: type, service: str, method: Method, arounds: tuple[Around, ...]) -> Call:
    name = method.name
    *inner_layers, outermost = arounds
    partial = functools.partial
    new_invocation = tuple.__new__  # the named tuple's own __new__ is a Python call more

    @functools.wraps(getattr(protocol, name))
    def call(self: Any, *args: Any, **kwargs: Any) -> Awaitable[Any]:
        # Not a coroutine of its own: it hands back the outermost layer's awaitable, which
        # saves a frame that every step of the call would otherwise pass through. Nothing
        # runs until that is awaited: the layers' partials only build the chain.
        target = getattr(self._inner, name)
        invocation = new_invocation(Invocation, (service, method, args, kwargs))
        proceed: Callable[[], Awaitable[Any]] = partial(target, *args, **kwargs)
        for around in inner_layers:
            proceed = partial(around, invocation, proceed)
        return outermost(invocation, proceed)

    return call
