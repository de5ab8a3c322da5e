"""A client for any model Protocol: an object with the Protocol's methods, over httpx.

Wiring decides whether the gateway holds a manager or one of these; the calling code
cannot tell, because errors come back as the same domain classes with the same codes.
"""

from __future__ import annotations

import asyncio
import functools
import random
from typing import TYPE_CHECKING, Any, TypeVar, cast

import httpx
from opentelemetry import propagate
from pydantic import ValidationError

from delinkcious.model.errors import DelinkciousError, Unavailable
from delinkcious.platform import served_by
from delinkcious.platform.routing.router import ROUTING_KEY, Replica, Router, ServiceRoute, key_of
from delinkcious.platform.routing.table import RouteTable
from delinkcious.platform.transport.errors import (
    DOMAIN_ERRORS,
    TRANSPORT_ERRORS,
    InternalAuthError,
    RemoteError,
    parse_error,
)
from delinkcious.platform.transport.introspection import Method, describe, protocol_class
from delinkcious.platform.transport.server import PREFIX

if TYPE_CHECKING:
    from typing_extensions import TypeForm

P = TypeVar("P")

# Failures before the request left this process: retrying them is safe for any method.
_UNSENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# Failures after it may have reached the server: retried only for idempotent methods.
_LOST = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
_GATEWAY_TROUBLE = frozenset({502, 503, 504})


def make_client(
    *, timeout: float = 10.0, connect_timeout: float = 2.0, max_connections: int = 100
) -> httpx.AsyncClient:
    """The pooled client every remote of a process shares.

    httpx has no whole-request deadline: ``timeout`` bounds each read, write and wait for a
    pooled connection, which for these small JSON bodies is the whole call.
    ``trust_env=False``: internal traffic never goes through a proxy from the environment.
    """
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout, connect=connect_timeout),
        limits=httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        ),
        trust_env=False,
    )


class _Retry(Exception):
    """One attempt failed with ``error``; ``safe`` when the server cannot have acted on it."""

    def __init__(self, error: Unavailable, *, safe: bool) -> None:
        self.error = error
        self.safe = safe


class _Remote:
    """Base of the generated classes; holds the connection details (and never shows the token)."""

    _methods: dict[str, Method]

    def __init__(
        self,
        service: str,
        route: ServiceRoute,
        token: str,
        client: httpx.AsyncClient,
        retries: int,
        backoff: float,
    ) -> None:
        self._service = service
        self._route = route
        self._client = client
        self._retries = retries
        self._backoff = backoff
        self._headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
        self._paths = {name: f"{PREFIX}/{service}/{name}" for name in self._methods}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(service={self._service!r})"

    async def _call(self, method: Method, arguments: dict[str, Any]) -> Any:
        content = method.encode_arguments(arguments)
        key = ROUTING_KEY.get() or key_of(arguments)
        tried: tuple[Replica, ...] = ()
        replica = self._route.choose(method.name, key)
        attempt = 0
        while True:
            if replica is None:
                raise self._unavailable()
            try:
                return await self._attempt(method, content, replica)
            except _Retry as failure:
                if failure.safe:  # it refused the connection: nothing was sent, it is down
                    replica.eject("refused a connection")
                if attempt == self._retries or not (failure.safe or method.idempotent):
                    raise failure.error from failure.__cause__
            tried = (*tried, replica)
            replica = self._route.choose(method.name, key, tried)
            if replica is None:  # every replica tried: wait, then start over
                delay = self._backoff * 2**attempt
                await asyncio.sleep(random.uniform(delay / 2, delay))  # jitter: no herd
                tried = ()
                replica = self._route.choose(method.name, key)
            attempt += 1

    async def _attempt(self, method: Method, content: bytes, replica: Replica) -> Any:
        headers = dict(self._headers)
        propagate.inject(headers)  # W3C traceparent: the callee joins this trace
        replica.outstanding += 1
        try:
            response = await self._client.post(
                replica.url + self._paths[method.name], content=content, headers=headers
            )
        except _UNSENT as exc:
            raise _Retry(self._unavailable(), safe=True) from exc
        except _LOST as exc:
            raise _Retry(self._unavailable(), safe=False) from exc
        finally:
            replica.outstanding -= 1
        if response.status_code == 200:
            versions = response.headers.get(served_by.HEADER)
            served_by.merge(versions)
            self._route.answered(replica, _own_version(self._service, versions))
            try:
                return method.response.model_validate_json(response.content).result
            except ValidationError as exc:
                raise RemoteError(
                    f"{self._service}.{method.name} answered a result of another shape"
                ) from exc
        raise self._failure(method, response)

    def _unavailable(self) -> Unavailable:
        # The message may reach end users through the gateway: no addresses in it.
        return Unavailable(f"the {self._service} service is unavailable; try again shortly")

    def _failure(self, method: Method, response: httpx.Response) -> Exception:
        """The exception an error response stands for, by its type first, then its status."""
        status = response.status_code
        error = parse_error(response.content)
        if error is not None and error.type in DOMAIN_ERRORS:
            domain = DOMAIN_ERRORS[error.type](error.message, code=error.code)
            if isinstance(domain, Unavailable):
                return _Retry(domain, safe=False)
            return domain
        if error is not None and error.type in TRANSPORT_ERRORS:
            return TRANSPORT_ERRORS[error.type](f"{self._service}: {error.message}")
        if status in (401, 403):
            return InternalAuthError(f"{self._service} refused our internal token ({status})")
        if status in _GATEWAY_TROUBLE:
            return _Retry(self._unavailable(), safe=False)
        if error is not None and status < 500:  # a domain error this client does not know yet
            return DelinkciousError(error.message, code=error.code)
        return RemoteError(f"{self._service}.{method.name} answered HTTP {status}")


def _forwarder(method: Method, declared: Any) -> Any:
    @functools.wraps(declared)  # keeps name, docstring and the @idempotent mark
    async def forward(self: _Remote, *args: Any, **kwargs: Any) -> Any:
        bound = method.signature.bind(*args, **kwargs)  # a bad call fails as in-process
        return await self._call(method, bound.arguments)

    return forward


@functools.cache
def _remote_class(protocol: type) -> type[_Remote]:
    methods = describe(protocol)
    namespace: dict[str, Any] = {
        name: _forwarder(method, getattr(protocol, name)) for name, method in methods.items()
    }
    namespace["_methods"] = dict(methods)
    return type(f"Remote{protocol.__name__}", (_Remote,), namespace)


def _own_version(service: str, versions: str | None) -> str | None:
    for entry in (versions or "").split(","):
        name, _, version = entry.strip().partition("=")
        if name == service:
            return version
    return None


def remote(
    protocol: TypeForm[P],
    service: str,
    target: str | ServiceRoute,
    token: str,
    client: httpx.AsyncClient,
    *,
    retries: int = 3,
    backoff: float = 0.1,
) -> P:
    """An object implementing ``protocol`` whose calls go to ``service`` at ``target``: one
    base URL, or a route of the traffic shaper (stable and canary replicas).

    Domain errors come back as their own class, code and message. Connection failures,
    timeouts and 502/503/504 become ``Unavailable``: retried ``retries`` times when the
    method is ``@idempotent`` (or the request never left) — on another replica when there
    is one, else after an exponential backoff from ``backoff`` seconds — and raised at once
    otherwise. A replica that refuses a connection is ejected from its route. A refused
    token is ``InternalAuthError``.
    """
    if isinstance(target, str):
        target = Router(RouteTable(), {service: target}).route(service)
    instance = _remote_class(protocol_class(protocol))(
        service, target, token, client, retries, backoff
    )
    return cast(P, instance)
