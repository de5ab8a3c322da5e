"""Fault injection for drills and canary tests: added latency or failures on named methods.

Off unless ``DELINKCIOUS_FAULTS`` names methods, e.g.
``links.add_link:latency=6s,links.get_links:error=0.2``: every ``links.add_link`` waits
6 s more, one ``links.get_links`` in five fails with ``Unavailable`` (code
``injected_fault``). A method may take both, ``links.add_link:latency=250ms;error=0.5``
(or the same method named twice). Latency comes first, then the failure, then the call:
an injected failure never reaches the service.

It sits innermost in the chain, ``tracing(metrics(logging(faults(core))))``, so what it
injects is logged, counted and traced exactly like a real slow or failing dependency.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from delinkcious.model.errors import Unavailable
from delinkcious.platform.middleware.base import Around, Invocation
from delinkcious.platform.transport.introspection import describe

log = logging.getLogger("delinkcious.faults")

_TARGET = re.compile(r"(?P<service>[a-z0-9_-]+)\.(?P<method>[A-Za-z_][A-Za-z0-9_]*)")
_DURATION = re.compile(r"(?P<amount>\d+(?:\.\d+)?|\.\d+)(?P<unit>ms|s)")
_UNITS = {"ms": 0.001, "s": 1.0}


@dataclass(frozen=True, slots=True)
class Fault:
    """What to do to every call of one method: wait ``latency`` seconds, fail at ``error_rate``."""

    latency: float = 0.0
    error_rate: float = 0.0


Faults = Mapping[tuple[str, str], Fault]


def parse_duration(text: str) -> float:
    """``6s``, ``1.5s``, ``250ms`` -> seconds. A unit is required: ``6`` is refused."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a duration: write it like 6s, 1.5s or 250ms")
    return float(match["amount"]) * _UNITS[match["unit"]]


def _parse_rate(text: str) -> float:
    try:
        rate = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an error rate: write a number from 0 to 1") from None
    if not (math.isfinite(rate) and 0.0 <= rate <= 1.0):
        raise ValueError(f"error rate {text!r} is not between 0 and 1")
    return rate


def parse_faults(text: str) -> dict[tuple[str, str], Fault]:
    """``service.method:key=value[;key=value],...`` -> ``{(service, method): Fault}``.

    Keys are ``latency`` (a duration) and ``error`` (a rate in [0, 1]). Empty text is no
    fault at all. Anything malformed raises ``ValueError`` naming the entry and the reason,
    so a mistyped drill fails at start instead of silently injecting nothing.
    """
    faults: dict[tuple[str, str], Fault] = {}
    for raw in text.split(","):
        entry = raw.strip()
        if not entry:
            continue
        try:
            key, fault = _parse_entry(entry)
        except ValueError as exc:
            raise ValueError(f"DELINKCIOUS_FAULTS entry {entry!r}: {exc}") from None
        previous = faults.get(key)
        if previous is not None:
            if (previous.latency and fault.latency) or (previous.error_rate and fault.error_rate):
                raise ValueError(f"DELINKCIOUS_FAULTS sets the same fault twice on {entry!r}")
            fault = Fault(
                latency=previous.latency or fault.latency,
                error_rate=previous.error_rate or fault.error_rate,
            )
        faults[key] = fault
    return faults


def _parse_entry(entry: str) -> tuple[tuple[str, str], Fault]:
    target, colon, settings = entry.partition(":")
    if not colon:
        raise ValueError("expected service.method:latency=<duration> or :error=<rate>")
    match = _TARGET.fullmatch(target.strip())
    if match is None:
        raise ValueError(f"{target.strip()!r} is not service.method (e.g. links.add_link)")
    values: dict[str, float] = {}
    for part in settings.split(";"):
        name, equals, value = part.partition("=")
        name = name.strip()
        if not equals or not value.strip():
            raise ValueError(f"{part.strip()!r} is not latency=<duration> or error=<rate>")
        if name in values:
            raise ValueError(f"{name} is given twice")
        if name == "latency":
            values[name] = parse_duration(value)
        elif name == "error":
            values[name] = _parse_rate(value)
        else:
            raise ValueError(f"unknown fault {name!r}: use latency or error")
    fault = Fault(latency=values.get("latency", 0.0), error_rate=values.get("error", 0.0))
    return (match["service"], match["method"]), fault


def validate_faults(faults: Faults, protocols: Mapping[str, type]) -> None:
    """Refuse faults on a service or method that does not exist (``protocols`` by service)."""
    for service, method in faults:
        protocol = protocols.get(service)
        if protocol is None:
            known = ", ".join(sorted(protocols))
            raise ValueError(f"DELINKCIOUS_FAULTS: no service {service!r} (services: {known})")
        if method not in describe(protocol):
            known = ", ".join(sorted(describe(protocol)))
            raise ValueError(
                f"DELINKCIOUS_FAULTS: {service} has no method {method!r} (methods: {known})"
            )


def faults_middleware(
    to_inject: Faults,
    rng: Callable[[], float] = random.random,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
) -> Around:
    """An ``Around`` injecting ``to_inject``; methods not named pass straight through.

    ``rng`` returns a float in [0, 1): a call fails when it is below the error rate.
    """
    table = dict(to_inject)
    for (service, method), fault in sorted(table.items()):
        log.warning(
            "fault injection ON for %s.%s: latency %.3fs, error rate %.2f",
            service,
            method,
            fault.latency,
            fault.error_rate,
        )

    async def faults(invocation: Invocation, proceed: Callable[[], Awaitable[Any]]) -> Any:
        fault = table.get((invocation.service, invocation.method.name))
        if fault is None:
            return await proceed()
        if fault.latency:
            await sleep(fault.latency)
        if fault.error_rate and rng() < fault.error_rate:
            raise Unavailable("injected fault", code="injected_fault")
        return await proceed()

    return faults
