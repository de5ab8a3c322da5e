"""The traffic shaper: which replica of which pool (stable or canary) serves each call.

Per service a route (``table.Route``): a stable and a canary pool of replicas, a canary
weight in basis points, optionally the only methods the canary may serve. Users are sticky:
a user's bucket is a salted hash of their routing key (the user id the gateway
authenticated, or a stable argument of an anonymous call), and the canary serves the
buckets below its weight — so raising the weight only ever moves users stable → canary.
A tester's ``always`` / ``never`` override wins over the weight. Within a pool, the
replica with the fewest calls in flight answers (or the next in turn, ``round_robin``).

A replica that refuses a connection is ejected at once; one whose ``/readyz`` fails is
ejected by the health watch, which re-admits it once it answers ready again. Calls go to
the ejected only when nothing else is left. The table can be replaced at any moment
(``replace``): calls in flight keep the replica they hold, and replicas that stay in the
table keep their health and their count of calls in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import httpx
from prometheus_client import Counter

from delinkcious.model.errors import Unavailable
from delinkcious.platform.routing.table import Balance, Route, RouteTable

log = logging.getLogger("delinkcious.routing")

STABLE, CANARY = "stable", "canary"
ALWAYS, NEVER = "always", "never"
OVERRIDE_HEADER = "delinkcious-canary"

# Set per request by the caller's edge (the gateway): whose call this is, and a tester's
# override. Unset, a call is keyed on its own arguments (see ``key_of``).
ROUTING_KEY: ContextVar[str | None] = ContextVar("delinkcious_routing_key", default=None)
CANARY_OVERRIDE: ContextVar[str | None] = ContextVar("delinkcious_canary_override", default=None)

ROUTED = Counter(
    "delinkcious_routed_requests",
    "Calls answered by a replica of a service's route, by pool and the version that answered.",
    ("service", "pool", "version"),
)


def bucket(salt: str, key: str) -> int:
    """The key's place among 10 000 buckets; the same key and salt always give the same."""
    digest = hashlib.blake2b(key.encode(), key=salt.encode()[:64], digest_size=8).digest()
    return int.from_bytes(digest, "big") % 10_000


@dataclass(eq=False)
class Replica:
    """One process (or one Kubernetes Service) that serves a pool."""

    url: str
    pool: str
    healthy: bool = True
    reason: str | None = None  # why it is ejected
    version: str | None = None  # as its /version or its answers say
    outstanding: int = 0

    def eject(self, reason: str) -> None:
        if self.healthy:
            log.warning("ejected %s replica %s: %s", self.pool, self.url, reason)
        self.healthy, self.reason = False, reason

    def admit(self) -> None:
        if not self.healthy:
            log.info("re-admitted %s replica %s", self.pool, self.url)
        self.healthy, self.reason = True, None


@dataclass(eq=False)
class _Pool:
    replicas: list[Replica]
    balance: Balance
    _turns: Iterator[int] = field(default_factory=itertools.count)

    def pick(self, exclude: tuple[Replica, ...]) -> Replica | None:
        candidates = [r for r in self.replicas if r.healthy and r not in exclude]
        if not candidates:
            return None
        turn = next(self._turns)
        if self.balance is Balance.ROUND_ROBIN:
            return candidates[turn % len(candidates)]
        # Least outstanding; ties go round, so an idle pool still spreads its calls.
        fewest = min(r.outstanding for r in candidates)
        tied = [r for r in candidates if r.outstanding == fewest]
        return tied[turn % len(tied)]

    def last_resort(self, exclude: tuple[Replica, ...]) -> Replica | None:
        """An ejected replica, when no healthy one is left: maybe it is back already."""
        return next((r for r in self.replicas if r not in exclude), None)


@dataclass(eq=False)
class _Compiled:
    route: Route
    salt: str
    pools: dict[str, _Pool]


class ServiceRoute:
    """What a client of one service asks: the replica for a call, the next after a failure."""

    def __init__(self, router: Router, service: str) -> None:
        self._router = router
        self.service = service

    def pool_for(self, method: str, key: str) -> str:
        """STABLE or CANARY, for this caller (``key``) and method."""
        compiled = self._router.compiled(self.service)
        route = compiled.route
        if not route.reaches_canary(method):
            return STABLE
        override = CANARY_OVERRIDE.get()
        if override is not None:
            return CANARY if override == ALWAYS else STABLE
        if route.canary_weight == 0:
            return STABLE
        return CANARY if bucket(compiled.salt, key) < route.canary_weight else STABLE

    def choose(self, method: str, key: str, tried: tuple[Replica, ...] = ()) -> Replica | None:
        """A replica for this call: the caller's pool first, then the other one (only when
        the method may reach the canary), healthy ones before ejected ones."""
        compiled = self._router.compiled(self.service)
        preferred = self.pool_for(method, key) if not tried else tried[0].pool
        order = [preferred]
        other = CANARY if preferred == STABLE else STABLE
        if other == STABLE or compiled.route.reaches_canary(method):
            order.append(other)
        pools = [compiled.pools[name] for name in order if compiled.pools[name].replicas]
        for pool in pools:
            found = pool.pick(tried)
            if found is not None:
                return found
        for pool in pools:
            found = pool.last_resort(tried)
            if found is not None:
                return found
        return None

    def answered(self, replica: Replica, version: str | None) -> None:
        if version is not None:
            replica.version = version
        self._router.count(self.service, replica.pool, replica.version or "unknown")


class Router:
    """The routes in force for every service a process calls, and their replicas' health."""

    def __init__(self, table: RouteTable, defaults: Mapping[str, str]) -> None:
        """``defaults``: the URL of each service the table may leave out."""
        self._defaults = dict(defaults)
        self._compiled: dict[str, _Compiled] = {}
        self._counters: dict[tuple[str, str, str], Any] = {}
        self.table = table
        self.replace(table)

    def route(self, service: str) -> ServiceRoute:
        if service not in self._defaults:
            raise KeyError(f"no route to {service}")
        return ServiceRoute(self, service)

    def compiled(self, service: str) -> _Compiled:
        return self._compiled[service]

    def replace(self, table: RouteTable) -> None:
        """Put ``table`` in force at once; replicas that stay keep their state."""
        known = {
            (replica.pool, replica.url): replica
            for compiled in self._compiled.values()
            for pool in compiled.pools.values()
            for replica in pool.replicas
        }
        compiled: dict[str, _Compiled] = {}
        for service, default in self._defaults.items():
            route = table.routes.get(service) or Route(stable=(default,))
            pools = {
                name: _Pool(
                    [known.get((name, url)) or Replica(url, name) for url in urls], table.balance
                )
                for name, urls in ((STABLE, route.stable), (CANARY, route.canary))
            }
            compiled[service] = _Compiled(route, route.salt or service, pools)
        self._compiled = compiled  # one assignment: a call sees the old table or the new
        self.table = table

    async def ready(self, service: str) -> None:
        """A readiness check: at least one replica of the service is ready."""
        replicas = [r for pool in self._compiled[service].pools.values() for r in pool.replicas]
        if not any(replica.healthy for replica in replicas):
            reasons = "; ".join(f"{r.url}: {r.reason}" for r in replicas)
            raise Unavailable(f"no ready replica ({reasons})")

    def replicas(self) -> list[Replica]:
        return [
            replica
            for compiled in self._compiled.values()
            for pool in compiled.pools.values()
            for replica in pool.replicas
        ]

    def count(self, service: str, pool: str, version: str) -> None:
        key = (service, pool, version)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = ROUTED.labels(*key)
        counter.inc()

    def describe(self) -> dict[str, Any]:
        """The table in force, with each replica's state: for the admin endpoint."""
        return {
            "balance": self.table.balance.value,
            "routes": {
                service: {
                    "canary_weight": compiled.route.canary_weight,
                    "canary_methods": sorted(compiled.route.canary_methods)
                    if compiled.route.canary_methods is not None
                    else None,
                    "salt": compiled.salt,
                    **{
                        name: [
                            {
                                "url": r.url,
                                "healthy": r.healthy,
                                "reason": r.reason,
                                "version": r.version,
                                "outstanding": r.outstanding,
                            }
                            for r in pool.replicas
                        ]
                        for name, pool in compiled.pools.items()
                    },
                }
                for service, compiled in sorted(self._compiled.items())
            },
        }

    async def watch_health(self, http: httpx.AsyncClient, interval: float = 1.0) -> None:
        """Forever: ask every replica whether it is ready, and which version it runs."""
        while True:
            await asyncio.gather(*(self._probe(http, replica) for replica in self.replicas()))
            await asyncio.sleep(interval)

    async def _probe(self, http: httpx.AsyncClient, replica: Replica) -> None:
        # Its own stores only: a replica whose callee is down still serves what it can
        # (ejecting it for its callee would spread one outage over every caller).
        try:
            ready = await http.get(f"{replica.url}/readyz?scope=local", timeout=1.0)
        except httpx.HTTPError as exc:
            replica.eject(f"/readyz unreachable ({type(exc).__name__})")
            return
        if ready.status_code != 200:
            failing = _failing(ready)
            replica.eject(f"/readyz answered {ready.status_code}{failing}")
            return
        with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
            replica.version = (await http.get(f"{replica.url}/version", timeout=1.0)).json()[
                "version"
            ]
        replica.admit()


def _failing(response: httpx.Response) -> str:
    with contextlib.suppress(ValueError, AttributeError, TypeError):
        failing = response.json().get("failing")
        if failing:
            return f" (failing: {', '.join(map(str, failing))})"
    return ""


def key_of(arguments: Mapping[str, Any]) -> str:
    """A stable routing key from a call's own arguments, when its caller set none: the
    ``username`` it is about (directly or in its request object), else its first text."""
    for value in arguments.values():
        username = getattr(value, "username", None)
        if isinstance(username, str):
            return username
    if isinstance(arguments.get("username"), str):
        return str(arguments["username"])
    return next((value for value in arguments.values() if isinstance(value, str)), "")
