"""Which version of which service served a request: collected per request, sent back in a
``Delinkcious-Served-By`` header (``gateway=0.1.0, links=0.2.0``).

The edge of a request (the gateway's HTTP app, a service's internal API) opens a
collection; every service call notes the service and version that ran it (the metrics
layer of the middleware chain, in every shape); a remote call merges the versions its
callee sent back. So a public response names every service that took part, across
processes, and a canary's answers can be told from the stable's.
"""

from __future__ import annotations

from contextvars import ContextVar, Token

HEADER = "delinkcious-served-by"

_SERVED: ContextVar[dict[str, str] | None] = ContextVar("delinkcious_served_by", default=None)


def collect(
    first: tuple[str, str] | None = None,
) -> tuple[dict[str, str], Token[dict[str, str] | None]]:
    """Start collecting for this request; ``first`` is the edge's own (service, version)."""
    served: dict[str, str] = dict([first]) if first is not None else {}
    return served, _SERVED.set(served)


def stop(token: Token[dict[str, str] | None]) -> None:
    _SERVED.reset(token)


def note(service: str, version: str) -> None:
    served = _SERVED.get()
    if served is not None:
        served[service] = version


def merge(header: str | None) -> None:
    """The versions a callee reported, added to this request's."""
    served = _SERVED.get()
    if served is None or not header:
        return
    for entry in header.split(","):
        service, sep, version = entry.strip().partition("=")
        if sep and service:
            served.setdefault(service, version)


def render(served: dict[str, str]) -> str:
    return ", ".join(f"{service}={version}" for service, version in served.items())
