"""The route table: where each service answers, and how much of its traffic is a canary's.

A YAML (or JSON) file, one route per service the process calls::

    balance: least_outstanding        # or round_robin
    routes:
      links:
        stable: [http://127.0.0.1:5001, http://127.0.0.1:5006]
        canary: [http://127.0.0.1:5010]
        canary_weight: 1000           # basis points: 1000 = 10 % of users
        canary_methods: [get_links]   # only these methods may go to the canary
        salt: links-2026-12           # which users the weight picks (default: the service)

Parsing is strict: an unknown key, a weight outside 0-10 000 or a URL that is not
``http(s)://host[:port]`` is refused with a message naming where. A service the table
does not name keeps the URL of its ``DELINKCIOUS_<SERVICE>_URL`` setting, as its only
stable replica.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

CANARY_WEIGHT_MAX = 10_000  # basis points


class RouteTableError(ValueError):
    """The table cannot be used; the message says where and why (never a secret)."""


class Balance(StrEnum):
    """How a pool picks one of its replicas for a call."""

    LEAST_OUTSTANDING = "least_outstanding"
    ROUND_ROBIN = "round_robin"


def _base_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http(s) URL with a host")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError(f"{url!r}: only scheme://host[:port], nothing after it")
    _ = parts.port  # raises for a port that is not a number
    return url.rstrip("/")


Url = Annotated[str, AfterValidator(_base_url)]


class Route(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    stable: tuple[Url, ...] = Field(min_length=1)
    canary: tuple[Url, ...] = ()
    canary_weight: int = Field(0, ge=0, le=CANARY_WEIGHT_MAX)
    canary_methods: frozenset[str] | None = None
    salt: str | None = None

    def reaches_canary(self, method: str) -> bool:
        return bool(self.canary) and (self.canary_methods is None or method in self.canary_methods)


class RouteTable(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    balance: Balance = Balance.LEAST_OUTSTANDING
    routes: Mapping[str, Route] = Field(default_factory=dict)


def parse_table(data: Any, methods: Mapping[str, frozenset[str]]) -> RouteTable:
    """A table from parsed YAML/JSON; ``methods``: every service's method names.

    Beyond the schema: every route names a service, and every ``canary_methods`` entry a
    method of it. One table serves every process; each uses the routes of its callees.
    """
    try:
        table = RouteTable.model_validate(data if data is not None else {})
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "the table"
        raise RouteTableError(f"{where}: {first['msg']}") from None
    for service, route in table.routes.items():
        if service not in methods:
            known = ", ".join(sorted(methods)) or "none"
            raise RouteTableError(f"routes.{service}: no such service ({known})")
        unknown = sorted((route.canary_methods or frozenset()) - methods[service])
        if unknown:
            raise RouteTableError(
                f"routes.{service}.canary_methods: {service} has no method {unknown[0]!r}"
            )
        if route.canary_weight and not route.canary:
            raise RouteTableError(f"routes.{service}: canary_weight set but no canary replicas")
    return table
