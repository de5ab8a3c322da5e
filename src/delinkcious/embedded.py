"""The embedded shape: every service in this one process (``delinkcious up``).

By default on SQLite files and the in-process bus; on PostgreSQL, Redis and NATS when their
URLs are set. The services call each other in-process, through the same middleware chain
as in the distributed shape.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import cast

from fastapi import FastAPI

from delinkcious.platform.bus import Bus
from delinkcious.platform.config import Settings
from delinkcious.registry import build_order, check_faults
from delinkcious.wiring import Assembly


@dataclass
class EmbeddedSystem:
    app: FastAPI
    bus: Bus


@asynccontextmanager
async def embedded(settings: Settings) -> AsyncIterator[EmbeddedSystem]:
    """Every service, each built after the ones it calls; shutdown runs in reverse."""
    check_faults(settings)
    async with AsyncExitStack() as stack:
        assembly = Assembly(settings, stack)
        built: dict[str, object] = {}
        for service in build_order():
            callees = {callee: built[callee] for callee in service.calls}
            built[service.name] = await service.build(assembly, callees)
        assembly.start()
        yield EmbeddedSystem(app=cast(FastAPI, built["gateway"]), bus=await assembly.bus())


@asynccontextmanager
async def embedded_app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The embedded system's public app, for serving."""
    async with embedded(settings) as system:
        yield system.app
