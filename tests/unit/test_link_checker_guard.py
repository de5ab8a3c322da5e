"""The SSRF guard: address classification, the allow-list, and the checker's use of both.

Classification only: no test here sends a packet. The checker runs on a fake resolver and
an ``httpx.MockTransport`` that records what would have been sent (or fails the test).
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from ipaddress import ip_network
from typing import Protocol, TypedDict, Unpack

import httpx
import pytest

from delinkcious.link_checker.checker import CheckerSettings, HttpLinkChecker, Resolver
from delinkcious.link_checker.guard import AddressGuard, IPNetwork, parse_networks
from delinkcious.model.checker import CheckResult
from delinkcious.model.links import LinkStatus

REFUSED = [
    ("10.0.0.1", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.168.1.1", "private"),
    ("169.254.169.254", "cloud metadata"),
    ("169.254.1.1", "link-local"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("100.100.100.200", "cloud metadata"),
    ("127.0.0.1", "loopback"),
    ("127.1.2.3", "loopback"),
    ("0.0.0.0", "unspecified"),
    ("224.0.0.1", "multicast"),
    ("255.255.255.255", "private"),
    ("192.0.2.1", "private"),  # documentation range
    ("240.0.0.1", "private"),  # reserved for future use
    ("::1", "loopback"),
    ("::", "unspecified"),
    ("fe80::1", "link-local"),
    ("fd00::1", "private"),
    ("fc00::1", "private"),
    ("fd00:ec2::254", "cloud metadata"),
    ("ff02::1", "multicast"),
    ("2001:db8::1", "private"),
    ("::ffff:127.0.0.1", "IPv4-mapped form of 127.0.0.1, a loopback"),
    ("::ffff:10.0.0.1", "IPv4-mapped form of 10.0.0.1, a private"),
    ("::ffff:169.254.169.254", "cloud metadata"),
    ("::127.0.0.1", "IPv4-compatible form of 127.0.0.1"),
    ("::8.8.8.8", "deprecated IPv4-compatible"),
    ("2002:a00:1::", "6to4 form of 10.0.0.1"),
    ("2002:7f00:1::", "6to4 form of 127.0.0.1"),
    ("64:ff9b::a9fe:a9fe", "NAT64 form of 169.254.169.254"),
    ("2001:0:4136:e378:8000:63bf:f5ff:fffe", "Teredo form of 10.0.0.1"),
]
ALLOWED = [
    "8.8.8.8",
    "1.1.1.1",
    "2606:4700::1111",
    "::ffff:8.8.8.8",
    "2002:808:808::",
    "64:ff9b::808:808",
    "172.32.0.1",
]


@pytest.mark.parametrize(("address", "why"), REFUSED)
def test_non_public_addresses_are_refused(address: str, why: str) -> None:
    guard = AddressGuard()
    assert not guard.is_allowed(address)
    reason = guard.refusal_reason(address)
    assert reason is not None
    assert why in reason


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_are_allowed(address: str) -> None:
    assert AddressGuard().refusal_reason(address) is None


def test_the_allow_list_admits_exactly_its_networks() -> None:
    guard = AddressGuard(["127.0.0.2/32"])
    assert guard.is_allowed("127.0.0.2")
    assert guard.is_allowed("::ffff:127.0.0.2")  # the same host
    assert not guard.is_allowed("127.0.0.3")
    assert not guard.is_allowed("::1")


def test_the_allow_list_never_admits_a_metadata_endpoint() -> None:
    guard = AddressGuard(parse_networks("169.254.0.0/16, 100.64.0.0/10, fd00::/8, 0.0.0.0/0"))
    assert guard.is_allowed("169.254.1.1")
    assert guard.is_allowed("10.1.2.3")
    for metadata in ("169.254.169.254", "100.100.100.200", "fd00:ec2::254", "::ffff:a9fe:a9fe"):
        assert not guard.is_allowed(metadata)


def test_parse_networks() -> None:
    assert parse_networks("") == ()
    assert parse_networks(" 127.0.0.2/32, 10.0.0.0/8 ,, fd00::/8, 192.168.1.7") == (
        ip_network("127.0.0.2/32"),
        ip_network("10.0.0.0/8"),
        ip_network("fd00::/8"),
        ip_network("192.168.1.7/32"),
    )


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("10.0.0.0/33", "10.0.0.0/33"),
        ("10.0.0.1/8", "has host bits set"),
        ("localhost", "localhost"),
        ("127.0.0.1/32; 10.0.0.0/8", "127.0.0.1/32; 10.0.0.0/8"),
    ],
)
def test_parse_networks_refuses_what_is_not_a_network(text: str, detail: str) -> None:
    with pytest.raises(ValueError, match="invalid allowed network") as caught:
        parse_networks(text)
    assert detail in str(caught.value)
    assert "CIDR" in str(caught.value)


def test_a_bad_network_in_the_settings_is_an_error() -> None:
    with pytest.raises(ValueError, match="invalid allowed network"):
        HttpLinkChecker(CheckerSettings(allowed_networks=("10.0.0.0/99",)))


# --- the checker: resolve once, vet every address, dial the vetted IP ---------------------

PUBLIC = "93.184.215.14"
HOSTS: dict[str, list[str]] = {
    "example.com": [PUBLIC],
    "v6.example": ["2606:4700::1111"],
    "internal.example": ["10.0.0.5"],
    "metadata.example": ["169.254.169.254"],
    "mixed.example": [PUBLIC, "10.0.0.5"],  # one bad address is enough to refuse
    "mapped.example": ["::ffff:127.0.0.1"],
}
Handler = Callable[[httpx.Request], httpx.Response]


class FakeDns:
    """Answers from a table; records every lookup; may fail the first few temporarily."""

    def __init__(self, table: Mapping[str, Sequence[str]], temporary_failures: int = 0) -> None:
        self.table = table
        self.lookups: list[str] = []
        self.temporary_failures = temporary_failures

    async def __call__(self, host: str) -> Sequence[str]:
        self.lookups.append(host)
        if self.temporary_failures:
            self.temporary_failures -= 1
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.table[host]


class FakeNetwork:
    """Records each request the checker sends; ``answer`` decides the response."""

    def __init__(self, answer: Handler = lambda _request: httpx.Response(200)) -> None:
        self.requests: list[httpx.Request] = []
        self._answer = answer

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self._answer(request)


def no_network(request: httpx.Request) -> httpx.Response:
    pytest.fail(f"the checker tried to connect: {request.method} {request.url}")


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
    def __call__(
        self,
        network: Handler = ...,
        dns: Resolver | None = ...,
        **changes: Unpack[SettingsChanges],
    ) -> HttpLinkChecker: ...


@pytest.fixture
async def make_checker() -> AsyncIterator[CheckerFactory]:
    made: list[HttpLinkChecker] = []

    def make(
        network: Handler = no_network,
        dns: Resolver | None = None,
        **changes: Unpack[SettingsChanges],
    ) -> HttpLinkChecker:
        checker = HttpLinkChecker(
            dataclasses.replace(CheckerSettings(retries=2, backoff=0.0), **changes),
            resolver=dns or FakeDns(HOSTS),
            transport=httpx.MockTransport(network),
        )
        made.append(checker)
        return checker

    yield make
    for checker in made:
        await checker.aclose()


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://internal.example/", "10.0.0.5 is a private address"),
        ("https://metadata.example/latest/meta-data/", "169.254.169.254 is a cloud metadata"),
        ("http://mixed.example/", "10.0.0.5 is a private address"),
        ("http://mapped.example/", "loopback"),
    ],
)
async def test_refused_hosts_are_invalid_without_a_connection(
    url: str, why: str, make_checker: CheckerFactory
) -> None:
    dns = FakeDns(HOSTS)
    result = await make_checker(no_network, dns).check_link(url)
    assert result.status is LinkStatus.INVALID
    assert why in result.reason
    assert len(dns.lookups) == 1  # a refusal is final: no retry


async def test_the_vetted_address_is_dialled_with_the_real_name_in_host_and_sni(
    make_checker: CheckerFactory,
) -> None:
    network = FakeNetwork(lambda r: httpx.Response(405 if r.method == "HEAD" else 200))
    dns = FakeDns(HOSTS)
    result = await make_checker(network, dns).check_link(
        "https://user:secret@example.com/a/b?c=1#fragment"
    )
    assert result == CheckResult(LinkStatus.VALID, "HTTP 200")
    assert dns.lookups == ["example.com"]  # one lookup for HEAD and GET: nothing to rebind
    assert [r.method for r in network.requests] == ["HEAD", "GET"]
    for request in network.requests:
        assert str(request.url) == f"https://{PUBLIC}/a/b?c=1"
        assert request.headers["host"] == "example.com"
        assert request.extensions["sni_hostname"] == "example.com"
        assert request.headers["connection"] == "close"
        assert request.headers["user-agent"].startswith("Delinkcious-LinkChecker/")
        assert "authorization" not in request.headers


async def test_ip_literals_and_ports_keep_their_host_header(make_checker: CheckerFactory) -> None:
    network = FakeNetwork()
    dns = FakeDns({**HOSTS, "2606:4700::1111": ["2606:4700::1111"]})
    checker = make_checker(network, dns)
    assert (await checker.check_link("https://[2606:4700::1111]:8443/p")).status is LinkStatus.VALID
    assert (await checker.check_link("http://v6.example:8080/")).status is LinkStatus.VALID
    literal, named = network.requests
    assert str(literal.url) == "https://[2606:4700::1111]:8443/p"
    assert literal.headers["host"] == "[2606:4700::1111]:8443"
    assert "sni_hostname" not in literal.extensions
    assert str(named.url) == "http://[2606:4700::1111]:8080/"
    assert named.headers["host"] == "v6.example:8080"


async def test_every_redirect_hop_is_resolved_and_vetted_again(
    make_checker: CheckerFactory,
) -> None:
    """A name that rebinds to loopback between two hops is caught at the second one."""
    answers = iter([[PUBLIC], ["127.0.0.1"]])
    lookups: list[str] = []

    async def rebinding(host: str) -> Sequence[str]:
        lookups.append(host)
        return next(answers)

    network = FakeNetwork(lambda _r: httpx.Response(302, headers={"Location": "/next"}))
    result = await make_checker(network, rebinding).check_link("http://rebind.example/")
    assert result.status is LinkStatus.INVALID
    assert "127.0.0.1 is a loopback address" in result.reason
    assert lookups == ["rebind.example", "rebind.example"]
    assert [str(r.url) for r in network.requests] == [f"http://{PUBLIC}/"]


@pytest.mark.parametrize(
    "location", ["http://internal.example/", "https://metadata.example/", "http://10.0.0.1/"]
)
async def test_a_redirect_to_a_refused_host_is_not_followed(
    location: str, make_checker: CheckerFactory
) -> None:
    dns = FakeDns({**HOSTS, "10.0.0.1": ["10.0.0.1"]})
    network = FakeNetwork(lambda _r: httpx.Response(301, headers={"Location": location}))
    result = await make_checker(network, dns).check_link("http://example.com/")
    assert result.status is LinkStatus.INVALID
    assert "refused to connect" in result.reason
    assert len(network.requests) == 1


@pytest.mark.parametrize(
    "location", ["ftp://example.com/", "file:///etc/passwd", "javascript:alert(1)", "http://[::1"]
)
async def test_a_redirect_to_something_else_than_http_is_invalid(
    location: str, make_checker: CheckerFactory
) -> None:
    network = FakeNetwork(lambda _r: httpx.Response(302, headers={"Location": location}))
    result = await make_checker(network).check_link("http://example.com/")
    assert result.status is LinkStatus.INVALID
    assert result.reason.startswith(("redirect location is not http(s)", "malformed redirect"))
    assert len(network.requests) == 1


@pytest.mark.parametrize(
    "url",
    [
        "",
        "not a url",
        "example.com/no-scheme",
        "ftp://example.com/",
        "file:///etc/passwd",
        "http://",
        "https:///path",
        "http://[::1",
        "http://example.com:99999/",
        "http://xn--/",
        "http://exa\x00mple.com/",
        "http://" + "a" * 64 + ".example/",
        "http://a..b/",
    ],
)
async def test_bad_urls_are_invalid_and_never_raise(url: str, make_checker: CheckerFactory) -> None:
    result = await make_checker(no_network, FakeDns(HOSTS)).check_link(url)
    assert result.status is LinkStatus.INVALID
    assert result.reason


async def test_an_unknown_host_is_not_found(make_checker: CheckerFactory) -> None:
    dns = FakeDns(HOSTS)
    result = await make_checker(no_network, dns).check_link("https://nowhere.example/")
    assert result == CheckResult(LinkStatus.INVALID, "host not found: nowhere.example")
    assert dns.lookups == ["nowhere.example"]  # not found is an answer: no retry


async def test_a_temporary_dns_failure_is_retried(make_checker: CheckerFactory) -> None:
    dns = FakeDns(HOSTS, temporary_failures=2)
    network = FakeNetwork()
    result = await make_checker(network, dns, retries=2).check_link("http://example.com/")
    assert result == CheckResult(LinkStatus.VALID, "HTTP 200")
    assert len(dns.lookups) == 3


async def test_an_http_error_status_is_not_retried(make_checker: CheckerFactory) -> None:
    network = FakeNetwork(lambda _r: httpx.Response(503))
    result = await make_checker(network).check_link("http://example.com/")
    assert result == CheckResult(LinkStatus.INVALID, "HTTP 503")
    assert [r.method for r in network.requests] == ["HEAD", "GET"]


async def test_a_refused_connection_is_retried_then_reported(make_checker: CheckerFactory) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except ConnectionRefusedError as exc:
            raise httpx.ConnectError("All connection attempts failed", request=request) from exc

    network = FakeNetwork(refuse)
    result = await make_checker(network, retries=2).check_link("http://example.com/")
    assert result == CheckResult(LinkStatus.INVALID, "connection refused")
    assert len(network.requests) == 3
