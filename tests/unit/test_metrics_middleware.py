"""The metrics middleware on a toy Protocol: counts, outcomes, durations, pass-through."""

from __future__ import annotations

import asyncio
import itertools
from typing import Protocol, runtime_checkable

import pytest
from prometheus_client import REGISTRY

from delinkcious.model.checker import CheckResult, LinkChecker
from delinkcious.model.errors import InvalidArgument, NotFound, Unavailable
from delinkcious.model.links import LinkStatus
from delinkcious.model.markers import idempotent
from delinkcious.platform.metrics import DURATION_BUCKETS, metered_link_checker, outcome_of
from delinkcious.platform.middleware import wrap
from delinkcious.platform.middleware.metrics import metrics_middleware

_names = itertools.count()


@runtime_checkable
class Greeter(Protocol):
    @idempotent
    async def greet(self, name: str) -> str: ...

    async def fail(self, error: str) -> None: ...


class Core:
    def __init__(self) -> None:
        self.raised: BaseException | None = None

    async def greet(self, name: str) -> str:
        return f"hello {name}"

    async def fail(self, error: str) -> None:
        self.raised = {
            "not_found": NotFound("no such thing"),
            "invalid": InvalidArgument("bad"),
            "unavailable": Unavailable("down"),
            "bug": KeyError("oops"),
            "cancel": asyncio.CancelledError(),
        }[error]
        raise self.raised


def service_name() -> str:
    """A fresh service label per test: the registry is process-wide, so no test sees another's."""
    return f"toy{next(_names)}"


def requests(service: str, method: str, outcome: str, version: str = "1.2.3") -> float:
    labels = {"service": service, "method": method, "outcome": outcome, "version": version}
    return REGISTRY.get_sample_value("delinkcious_requests_total", labels) or 0.0


def duration(service: str, method: str, suffix: str, version: str = "1.2.3", **extra: str) -> float:
    labels = {"service": service, "method": method, "version": version, **extra}
    value = REGISTRY.get_sample_value(f"delinkcious_request_duration_seconds_{suffix}", labels)
    return value or 0.0


def metered(service: str, version: str = "1.2.3") -> tuple[Greeter, Core]:
    core = Core()
    return wrap(Greeter, service, core, metrics_middleware(version)), core


async def test_a_wrapped_service_still_implements_its_protocol() -> None:
    service, _ = metered(service_name())
    assert isinstance(service, Greeter)
    assert not isinstance(service, LinkChecker)
    assert getattr(type(service).greet, "__name__", None) == "greet"


async def test_success_is_counted_and_timed_with_the_version() -> None:
    name = service_name()
    service, _ = metered(name, version="9.9.9")
    assert await service.greet("ada") == "hello ada"
    assert await service.greet(name="bob") == "hello bob"
    assert requests(name, "greet", "success", "9.9.9") == 2
    assert requests(name, "greet", "success", "1.2.3") == 0
    assert duration(name, "greet", "count", "9.9.9") == 2
    assert 0 < duration(name, "greet", "sum", "9.9.9") < 1
    assert duration(name, "greet", "bucket", "9.9.9", le="10.0") == 2


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        ("not_found", "client_error"),
        ("invalid", "client_error"),
        ("unavailable", "error"),
        ("bug", "error"),
    ],
)
async def test_errors_pass_through_unchanged_and_are_classified(error: str, outcome: str) -> None:
    name = service_name()
    service, core = metered(name)
    with pytest.raises(Exception) as caught:
        await service.fail(error)
    assert caught.value is core.raised
    assert requests(name, "fail", outcome) == 1
    others = {"success", "client_error", "error"} - {outcome}
    assert all(requests(name, "fail", other) == 0 for other in others)
    assert duration(name, "fail", "count") == 1


async def test_a_cancelled_call_is_an_error_and_still_cancels() -> None:
    name = service_name()
    service, core = metered(name)
    with pytest.raises(asyncio.CancelledError) as caught:
        await service.fail("cancel")
    assert caught.value is core.raised
    assert requests(name, "fail", "error") == 1


async def test_services_and_methods_have_their_own_series() -> None:
    first, second = service_name(), service_name()
    around = metrics_middleware("1.2.3")  # one middleware shared, as in the embedded shape
    a = wrap(Greeter, first, Core(), around)
    b = wrap(Greeter, second, Core(), around)
    await a.greet("x")
    await b.greet("y")
    await b.greet("z")
    with pytest.raises(NotFound):
        await b.fail("not_found")
    assert requests(first, "greet", "success") == 1
    assert requests(second, "greet", "success") == 2
    assert requests(second, "fail", "client_error") == 1
    assert requests(first, "fail", "client_error") == 0


async def test_slow_calls_land_above_the_5_second_boundary() -> None:
    assert 5.0 in DURATION_BUCKETS and DURATION_BUCKETS[-1] >= 10.0
    assert DURATION_BUCKETS[0] == 0.005


def test_outcome_classification() -> None:
    assert outcome_of(NotFound("x")) == "client_error"
    assert outcome_of(Unavailable("x")) == "error"
    assert outcome_of(Unavailable("x", code="injected_fault")) == "error"
    assert outcome_of(RuntimeError("x")) == "error"


class FakeChecker:
    def __init__(self) -> None:
        self.verdicts = {
            "https://ok.example/": CheckResult(LinkStatus.VALID, "200"),
            "https://bad.example/": CheckResult(LinkStatus.INVALID, "404"),
        }

    async def check_link(self, url: str) -> CheckResult:
        return self.verdicts[url]


def checks(result: str) -> float:
    return REGISTRY.get_sample_value("delinkcious_link_checks_total", {"result": result}) or 0.0


async def test_link_checks_are_counted_by_result() -> None:
    checker = metered_link_checker(FakeChecker())
    assert isinstance(checker, LinkChecker)
    before = {result: checks(result) for result in ("valid", "invalid", "error")}
    assert (await checker.check_link("https://ok.example/")).status is LinkStatus.VALID
    await checker.check_link("https://bad.example/")
    await checker.check_link("https://bad.example/")
    with pytest.raises(KeyError):
        await checker.check_link("https://boom.example/")
    assert checks("valid") - before["valid"] == 1
    assert checks("invalid") - before["invalid"] == 2
    assert checks("error") - before["error"] == 1
