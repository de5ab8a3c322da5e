"""Generic middleware: wrap any object implementing a model Protocol in a cross-cutting concern.

A middleware is an ``Around`` function; ``wrap`` applies it to every method of the
Protocol at once, and the result implements the same Protocol, so the chain
``tracing(metrics(logging(core)))`` is written once for every service (the Go original
needed a hand-written wrapper per method per service).
"""

from delinkcious.platform.middleware.base import Around, Call, Invocation, wrap

__all__ = ["Around", "Call", "Invocation", "wrap"]
