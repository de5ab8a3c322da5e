"""``HttpLinkChecker`` against real HTTP(S) servers that the tests start on loopback addresses.

No test sends traffic anywhere but 127.0.0.0/8: private and metadata addresses are tested
at the classification level only (tests/unit/test_link_checker_guard.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import shlex
import shutil
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Protocol, TypedDict, Unpack
from urllib.parse import unquote

import httpx
import pytest

from delinkcious.link_checker.checker import CheckerSettings, HttpLinkChecker
from delinkcious.link_checker.guard import IPNetwork
from delinkcious.model.checker import CheckResult, LinkChecker
from delinkcious.model.links import LinkStatus

VALID, INVALID = LinkStatus.VALID, LinkStatus.INVALID
# Generous for answers that come at once; the timeout tests set their own small ones.
FAST = CheckerSettings(
    allowed_networks=("127.0.0.1/32", "127.0.0.2/32"),
    connect_timeout=2.0,
    total_timeout=2.0,
    retries=2,
    backoff=0.01,
)
SLOW_ANSWER = 3.0  # seconds: longer than any timeout a test sets


class Server:
    """A raw HTTP/1.1 server on one loopback address that records every request it gets.

    The path picks the behaviour: ``/ok`` 200, ``/missing`` 404, ``/moved`` 301 to ``/ok``,
    ``/chain/N`` N redirects then 200, ``/loop`` redirects to itself, ``/to?<url>`` 302 to
    that url, ``/no-head`` 405 to HEAD and 200 to GET (with an endless body), ``/slow``
    answers after SLOW_ANSWER, ``/hang`` never answers, ``/flaky`` drops its first two
    connections, ``/busy`` takes 0.15 s and counts how many requests overlap.
    """

    def __init__(self, host: str, ssl_context: ssl.SSLContext | None = None) -> None:
        self.host = host
        self.port = 0
        self.hits: list[tuple[str, str, str]] = []  # method, target, Host header
        self.flaky_drops = 2
        self.active = self.peak = 0
        self._ssl = ssl_context
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, 0, ssl=self._ssl)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._handlers:
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    def url(self, path: str, host: str | None = None) -> str:
        return f"http://{host or self.host}:{self.port}{path}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            request_line, *lines = head.strip().split("\r\n")
            method, target, _ = request_line.split(" ")
            pairs = (line.partition(":") for line in lines)
            fields = {name.lower(): value.strip() for name, _, value in pairs}
            self.hits.append((method, target, fields.get("host", "")))
            await self._answer(method, target, writer)
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            self._handlers.discard(task)
            writer.close()

    async def _answer(self, method: str, target: str, writer: asyncio.StreamWriter) -> None:
        path, _, query = target.partition("?")
        if path == "/flaky" and self.flaky_drops:
            self.flaky_drops -= 1
            return  # close without a word
        if path == "/hang":
            await asyncio.Event().wait()
        if path == "/slow":
            await asyncio.sleep(SLOW_ANSWER)
        if path == "/busy":
            self.active += 1
            self.peak = max(self.peak, self.active)
            await asyncio.sleep(0.15)
            self.active -= 1
        if path == "/no-head" and method == "GET":
            # Promise a huge body and send only a little: the checker must not wait for it.
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n" + b"x" * 1024)
            await writer.drain()
            await asyncio.Event().wait()
        status, location = 200, None
        if path == "/missing":
            status = 404
        elif path == "/no-head":
            status = 405
        elif path == "/moved":
            status, location = 301, "/ok"
        elif path == "/dir/relative":
            status, location = 302, "../ok"
        elif path == "/loop":
            status, location = 302, "/loop"
        elif path.startswith("/chain/") and int(path.removeprefix("/chain/")) > 0:
            status, location = 302, f"/chain/{int(path.removeprefix('/chain/')) - 1}"
        elif path == "/to":
            status, location = 302, unquote(query)
        headers = f"Location: {location}\r\n" if location else ""
        head = f"HTTP/1.1 {status} X\r\n{headers}Content-Length: 0\r\nConnection: close\r\n\r\n"
        writer.write(head.encode())
        await writer.drain()


ServerFactory = Callable[..., Awaitable[Server]]


class SettingsChanges(TypedDict, total=False):
    """The ``CheckerSettings`` fields a test may change (passed to ``dataclasses.replace``)."""

    allowed_networks: Sequence[str | IPNetwork]
    connect_timeout: float
    total_timeout: float
    max_concurrency: int
    retries: int
    backoff: float
    max_redirects: int
    user_agent: str


class CheckerFactory(Protocol):
    def __call__(self, **changes: Unpack[SettingsChanges]) -> HttpLinkChecker: ...


@pytest.fixture
async def start_server() -> AsyncIterator[ServerFactory]:
    started: list[Server] = []

    async def start(host: str = "127.0.0.1", ssl_context: ssl.SSLContext | None = None) -> Server:
        server = Server(host, ssl_context)
        await server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        await server.stop()


@pytest.fixture
async def server(start_server: ServerFactory) -> Server:
    return await start_server("127.0.0.1")


@pytest.fixture
async def make_checker() -> AsyncIterator[CheckerFactory]:
    """A checker with FAST settings, changed by keyword; closed at the end of the test."""
    made: list[HttpLinkChecker] = []

    def make(**changes: Unpack[SettingsChanges]) -> HttpLinkChecker:
        checker = HttpLinkChecker(dataclasses.replace(FAST, **changes))
        made.append(checker)
        return checker

    yield make
    for checker in made:
        await checker.aclose()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_implements_the_port(make_checker: CheckerFactory) -> None:
    assert isinstance(make_checker(), LinkChecker)


# --- answers -------------------------------------------------------------------------------


async def test_ok_is_valid(server: Server, make_checker: CheckerFactory) -> None:
    result = await make_checker().check_link(server.url("/ok?q=1#fragment"))
    assert result == CheckResult(VALID, "HTTP 200")
    assert server.hits == [("HEAD", "/ok?q=1", f"127.0.0.1:{server.port}")]


async def test_redirect_then_ok_is_valid(server: Server, make_checker: CheckerFactory) -> None:
    assert await make_checker().check_link(server.url("/moved")) == CheckResult(VALID, "HTTP 200")
    assert [hit[:2] for hit in server.hits] == [("HEAD", "/moved"), ("HEAD", "/ok")]


async def test_relative_location_is_resolved_against_the_current_url(
    server: Server, make_checker: CheckerFactory
) -> None:
    assert (await make_checker().check_link(server.url("/dir/relative"))).status is VALID
    assert [hit[1] for hit in server.hits] == ["/dir/relative", "/ok"]


async def test_not_found_is_invalid(server: Server, make_checker: CheckerFactory) -> None:
    result = await make_checker().check_link(server.url("/missing"))
    assert result == CheckResult(INVALID, "HTTP 404")
    assert [hit[:2] for hit in server.hits] == [("HEAD", "/missing"), ("GET", "/missing")]


async def test_head_refused_falls_back_to_get_without_reading_the_body(
    server: Server, make_checker: CheckerFactory
) -> None:
    result = await make_checker(total_timeout=0.5, retries=0).check_link(server.url("/no-head"))
    assert result == CheckResult(VALID, "HTTP 200")
    assert [hit[:2] for hit in server.hits] == [("HEAD", "/no-head"), ("GET", "/no-head")]


async def test_five_redirects_are_followed_a_sixth_is_not(
    server: Server, make_checker: CheckerFactory
) -> None:
    checker = make_checker()
    assert (await checker.check_link(server.url("/chain/5"))).status is VALID
    server.hits.clear()
    result = await checker.check_link(server.url("/chain/6"))
    assert result == CheckResult(INVALID, "too many redirects (more than 5)")
    assert len(server.hits) == 6  # the original and five redirects; /chain/0 is never asked


async def test_redirect_loop_is_invalid(server: Server, make_checker: CheckerFactory) -> None:
    result = await make_checker().check_link(server.url("/loop"))
    assert result == CheckResult(INVALID, "too many redirects (more than 5)")


async def test_redirect_to_another_scheme_is_invalid(
    server: Server, make_checker: CheckerFactory
) -> None:
    result = await make_checker().check_link(server.url("/to?ftp://127.0.0.1/file"))
    assert result.status is INVALID
    assert "not http(s)" in result.reason


# --- timeouts, refusals, retries -----------------------------------------------------------


@pytest.mark.parametrize("path", ["/slow", "/hang"])
async def test_no_answer_in_time_is_invalid_after_the_retries(
    path: str, server: Server, make_checker: CheckerFactory
) -> None:
    checker = make_checker(connect_timeout=0.3, total_timeout=0.3, retries=2)
    started = asyncio.get_running_loop().time()
    result = await checker.check_link(server.url(path))
    assert result == CheckResult(INVALID, "timed out")
    assert len(server.hits) == 3  # one attempt and two retries
    assert asyncio.get_running_loop().time() - started < SLOW_ANSWER


async def test_closed_port_is_connection_refused(make_checker: CheckerFactory) -> None:
    result = await make_checker().check_link(f"http://127.0.0.1:{closed_port()}/")
    assert result == CheckResult(INVALID, "connection refused")


async def test_dropped_connections_are_retried(
    server: Server, make_checker: CheckerFactory
) -> None:
    assert await make_checker(retries=2).check_link(server.url("/flaky")) == CheckResult(
        VALID, "HTTP 200"
    )
    assert [hit[:2] for hit in server.hits] == [("HEAD", "/flaky")] * 3


async def test_retries_give_up(server: Server, make_checker: CheckerFactory) -> None:
    result = await make_checker(retries=1).check_link(server.url("/flaky"))
    assert result.status is INVALID
    assert result.reason.startswith("connection failed")
    assert len(server.hits) == 2


async def test_concurrent_checks_are_capped(server: Server, make_checker: CheckerFactory) -> None:
    checker = make_checker(max_concurrency=2)
    results = await asyncio.gather(*(checker.check_link(server.url("/busy")) for _ in range(6)))
    assert {result.status for result in results} == {VALID}
    assert len(server.hits) == 6
    assert server.peak == 2


# --- SSRF ----------------------------------------------------------------------------------


async def test_loopback_is_refused_without_an_allow_list(
    server: Server, make_checker: CheckerFactory
) -> None:
    result = await make_checker(allowed_networks=()).check_link(server.url("/ok"))
    assert result.status is INVALID
    assert "127.0.0.1 is a loopback address" in result.reason
    assert server.hits == []


async def test_a_name_that_resolves_to_loopback_is_refused(
    server: Server, make_checker: CheckerFactory
) -> None:
    result = await make_checker(allowed_networks=()).check_link(server.url("/ok", "localhost"))
    assert result.status is INVALID
    assert "refused to connect to localhost" in result.reason
    assert server.hits == []


async def test_a_redirect_to_a_refused_address_is_not_followed(
    start_server: ServerFactory, make_checker: CheckerFactory
) -> None:
    allowed = await start_server("127.0.0.2")
    recorder = await start_server("127.0.0.3")
    checker = make_checker(allowed_networks=("127.0.0.2/32",))
    result = await checker.check_link(allowed.url(f"/to?{recorder.url('/ok')}"))
    assert result.status is INVALID
    assert "127.0.0.3 is a loopback address" in result.reason
    assert len(allowed.hits) == 1
    assert recorder.hits == []


# --- TLS: the vetted IP is dialled, the real name is verified ------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for ``checker.test`` (and no IP address)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command makes the test certificate")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    command = shlex.split(
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1"
        " -subj /CN=checker.test -addext subjectAltName=DNS:checker.test"
    )
    subprocess.run(
        [*command, "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True
    )
    return cert, key


async def test_https_is_verified_against_the_real_host_name(
    certificate: tuple[Path, Path], start_server: ServerFactory
) -> None:
    cert, key = certificate
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    names: list[str | None] = []
    server_context.sni_callback = lambda _sock, name, _ctx: names.append(name)
    server = await start_server("127.0.0.1", server_context)

    async def resolver(host: str) -> list[str]:
        return ["127.0.0.1"] if host in ("checker.test", "other.test") else []

    checker = HttpLinkChecker(
        FAST,
        resolver=resolver,
        transport=httpx.AsyncHTTPTransport(verify=ssl.create_default_context(cafile=cert)),
    )
    try:
        ok = await checker.check_link(f"https://checker.test:{server.port}/ok")
        assert ok == CheckResult(VALID, "HTTP 200")
        assert server.hits == [("HEAD", "/ok", f"checker.test:{server.port}")]
        assert names == ["checker.test"]

        wrong = await checker.check_link(f"https://other.test:{server.port}/ok")
        assert wrong.status is INVALID
        assert wrong.reason.startswith("TLS certificate not accepted")
        assert len(server.hits) == 1  # the handshake failed: no request was sent
    finally:
        await checker.aclose()
