"""``HttpLinkChecker``: the ``LinkChecker`` port over HTTP(S), behind the SSRF guard.

Every hop's host is resolved once, every address it resolves to must pass the guard, and the
request then goes to the vetted IP itself, the real host name travelling only in the Host
header and the TLS SNI: DNS gets no second chance to answer differently (no rebinding).
Redirects are followed by hand so that each hop goes through the same guard.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from ipaddress import ip_address

import httpx

from delinkcious import __version__
from delinkcious.link_checker.guard import AddressGuard, IPNetwork
from delinkcious.model.checker import CheckResult
from delinkcious.model.links import LinkStatus

Resolver = Callable[[str], Awaitable[Sequence[str]]]
"""A host name → its IP addresses, best first; raises ``socket.gaierror`` when unknown."""

_DEFAULT_PORTS = {"http": 80, "https": 443}
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True, slots=True)
class CheckerSettings:
    """How patient and how busy the checker is, and which non-public networks it may reach.

    The timeouts bound one attempt: the walk from the saved url through all its redirects.
    An attempt that times out or cannot connect is retried after ``backoff * 2**n`` seconds.
    """

    allowed_networks: Sequence[str | IPNetwork] = ()
    connect_timeout: float = 3.0
    total_timeout: float = 10.0
    max_concurrency: int = 16
    retries: int = 2
    backoff: float = 0.5
    max_redirects: int = 5
    user_agent: str = f"Delinkcious-LinkChecker/{__version__}"


async def resolve_host(host: str) -> list[str]:
    """The event loop's getaddrinfo: runs in a thread, so a slow DNS never blocks the loop."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class _Failure(Exception):
    """Why a check failed; ``transient`` failures are worth another attempt."""

    def __init__(self, reason: str, *, transient: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.transient = transient


class HttpLinkChecker:
    """Implements ``LinkChecker`` over one pooled HTTP transport; ``aclose()`` it when done.

    It drives an ``httpx.AsyncHTTPTransport`` rather than an ``AsyncClient``: the client parses
    every Location header even when it does not follow it (failing on malformed ones before
    the checker sees them), keeps cookies, replays credentials found in urls, and can pick
    up proxies; the checker wants none of that. ``resolver`` and ``transport`` are the seams
    tests use to fake DNS and the network.
    """

    def __init__(
        self,
        settings: CheckerSettings | None = None,
        *,
        resolver: Resolver = resolve_host,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._settings = settings = settings or CheckerSettings()
        self._guard = AddressGuard(settings.allowed_networks)
        self._resolve = resolver
        self._slots = asyncio.Semaphore(settings.max_concurrency)
        self._timeouts = httpx.Timeout(
            settings.total_timeout, connect=settings.connect_timeout
        ).as_dict()
        self._transport = transport or httpx.AsyncHTTPTransport(
            verify=True,
            trust_env=False,
            limits=httpx.Limits(max_connections=settings.max_concurrency),
        )

    async def check_link(self, url: str) -> CheckResult:
        """``valid`` when the url answers below 400 (after redirects); never raises."""
        settings = self._settings
        for attempt in range(settings.retries + 1):
            if attempt:
                await asyncio.sleep(settings.backoff * 2 ** (attempt - 1))
            async with self._slots:
                try:
                    async with asyncio.timeout(settings.total_timeout):
                        return await self._walk(url)
                except (_Failure, httpx.TransportError, TimeoutError) as exc:
                    failure = _as_failure(exc)
            if not failure.transient:
                break
        return CheckResult(LinkStatus.INVALID, failure.reason)

    async def aclose(self) -> None:
        await self._transport.aclose()

    async def _walk(self, url: str) -> CheckResult:
        location = url
        base: httpx.URL | None = None  # what a relative Location is resolved against
        for _hop in range(self._settings.max_redirects + 1):
            target = _parse(location, base)
            status, redirect = await self._ask(target)
            if status not in _REDIRECTS or redirect is None:
                verdict = LinkStatus.VALID if status < 400 else LinkStatus.INVALID
                return CheckResult(verdict, f"HTTP {status}")
            location, base = redirect, target
        raise _Failure(f"too many redirects (more than {self._settings.max_redirects})")

    async def _ask(self, target: httpx.URL) -> tuple[int, str | None]:
        """HEAD the url at a vetted address of its host; GET when HEAD gets an error status."""
        addresses = await self._vetted_addresses(target.raw_host.decode("ascii"))
        status, location = await self._send("HEAD", target, addresses)
        if status >= 400:  # many servers refuse or mishandle HEAD: GET has the last word
            status, location = await self._send("GET", target, addresses)
        return status, location

    async def _vetted_addresses(self, host: str) -> Sequence[str]:
        """Resolve ``host`` once; refuse it if any of its addresses is refused."""
        try:
            addresses = await self._resolve(host)
        except socket.gaierror as exc:
            if exc.errno == socket.EAI_AGAIN:
                raise _Failure(f"DNS lookup of {host} failed", transient=True) from None
            raise _Failure(f"host not found: {host}") from None
        except UnicodeError:
            raise _Failure(f"malformed host name: {host}") from None
        if not addresses:
            raise _Failure(f"host not found: {host}")
        for address in addresses:
            refusal = self._guard.refusal_reason(address)
            if refusal is not None:
                raise _Failure(f"refused to connect to {host}: {refusal}")
        return addresses

    async def _send(
        self, method: str, target: httpx.URL, addresses: Sequence[str]
    ) -> tuple[int, str | None]:
        for address in addresses[:-1]:
            with contextlib.suppress(httpx.ConnectError):  # another address may answer
                return await self._request(method, target, address)
        return await self._request(method, target, addresses[-1])

    async def _request(
        self, method: str, target: httpx.URL, address: str
    ) -> tuple[int, str | None]:
        """Ask ``address`` itself for ``target`` (no DNS), reading no more than the headers."""
        host = target.raw_host.decode("ascii")
        headers = {
            "Host": target.netloc.decode("ascii"),
            "User-Agent": self._settings.user_agent,
            "Accept": "*/*",
        }
        extensions: dict[str, object] = {"timeout": self._timeouts}
        if target.scheme == "https":
            # The pool keys connections by IP: one verified for another name must not serve.
            headers["Connection"] = "close"
            if not _is_ip(host):
                extensions["sni_hostname"] = host
        # Credentials written in the url (user:password@) are not sent anywhere.
        pinned = httpx.URL(
            scheme=target.scheme, host=address, port=target.port, raw_path=target.raw_path
        )
        request = httpx.Request(method, pinned, headers=headers, extensions=extensions)
        response = await self._transport.handle_async_request(request)
        await response.aclose()
        return response.status_code, response.headers.get("location") or None


def _parse(text: str, base: httpx.URL | None) -> httpx.URL:
    """An absolute http(s) url with a host, or a ``_Failure`` saying what is wrong with it."""
    what = "url" if base is None else "redirect location"
    try:
        url = httpx.URL(text) if base is None else base.join(text)
        port = url.port
    except (httpx.InvalidURL, ValueError) as exc:
        raise _Failure(f"malformed {what}: {exc}") from None
    if url.scheme not in _DEFAULT_PORTS:
        raise _Failure(f"{what} is not http(s): {text[:100]}")
    if not url.raw_host:
        raise _Failure(f"{what} has no host: {text[:100]}")
    if port is not None and not 0 < port < 65536:
        raise _Failure(f"malformed {what}: port {port} out of range")
    return url


def _is_ip(host: str) -> bool:
    try:
        ip_address(host)
    except ValueError:
        return False
    return True


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _as_failure(exc: Exception) -> _Failure:
    """A short reason for what went wrong, and whether trying again might help."""
    if isinstance(exc, _Failure):
        return exc
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return _Failure("timed out", transient=True)
    for cause in _causes(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return _Failure(f"TLS certificate not accepted: {cause.verify_message}")
        if isinstance(cause, ssl.SSLError):
            return _Failure(f"TLS handshake failed: {cause.reason or cause}")
        if isinstance(cause, ConnectionRefusedError):
            return _Failure("connection refused", transient=True)
        if isinstance(cause, ConnectionResetError):
            return _Failure("connection reset", transient=True)
    if isinstance(exc, httpx.NetworkError | httpx.RemoteProtocolError):
        return _Failure(f"connection failed: {exc}", transient=True)
    return _Failure(f"request failed: {exc}")
