"""Fault injection: parsing DELINKCIOUS_FAULTS, and the middleware on a toy Protocol."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, runtime_checkable

import pytest

from delinkcious.model.errors import NotFound, Unavailable
from delinkcious.platform.middleware import wrap
from delinkcious.platform.middleware.faults import (
    Fault,
    faults_middleware,
    parse_duration,
    parse_faults,
    validate_faults,
)


@runtime_checkable
class Store(Protocol):
    async def put(self, key: str) -> str: ...

    async def get(self, key: str) -> str: ...


class Core:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.error = NotFound("missing")

    async def put(self, key: str) -> str:
        self.calls.append(f"put {key}")
        return key

    async def get(self, key: str) -> str:
        self.calls.append(f"get {key}")
        if key == "missing":
            raise self.error
        return key


class FakeSleep:
    def __init__(self) -> None:
        self.slept: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)


# --- parsing ---------------------------------------------------------------------------------


def test_the_example_from_the_issue() -> None:
    faults = parse_faults("links.add_link:latency=6s,links.get_links:error=0.2")
    assert faults == {
        ("links", "add_link"): Fault(latency=6.0),
        ("links", "get_links"): Fault(error_rate=0.2),
    }


def test_empty_means_no_fault() -> None:
    assert parse_faults("") == {}
    assert parse_faults("  ") == {}
    assert parse_faults(" , ") == {}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("6s", 6.0), ("250ms", 0.25), ("1.5s", 1.5), ("0s", 0.0), (" 10ms ", 0.01), (".5s", 0.5)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


def test_both_faults_on_one_method_and_spaces() -> None:
    both = Fault(latency=0.25, error_rate=0.5)
    assert parse_faults(" news.get_news : latency=250ms ; error=0.5 ") == {
        ("news", "get_news"): both
    }
    assert parse_faults("news.get_news:latency=250ms, news.get_news:error=0.5") == {
        ("news", "get_news"): both
    }
    assert parse_faults("social_graph.follow:error=1,link_checker.check_link:error=0") == {
        ("social_graph", "follow"): Fault(error_rate=1.0),
        ("link_checker", "check_link"): Fault(),
    }


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("links.add_link", "expected service.method"),
        ("links:latency=6s", "is not service.method"),
        ("links.add_link:latency=6", "is not a duration"),
        ("links.add_link:latency=-1s", "is not a duration"),
        ("links.add_link:latency=6 h", "is not a duration"),
        ("links.add_link:error=1.5", "not between 0 and 1"),
        ("links.add_link:error=-0.1", "not between 0 and 1"),
        ("links.add_link:error=nan", "not between 0 and 1"),
        ("links.add_link:error=lots", "is not an error rate"),
        ("links.add_link:timeout=1s", "unknown fault 'timeout'"),
        ("links.add_link:latency", "is not latency=<duration>"),
        ("links.add_link:", "is not latency=<duration>"),
        ("links.add_link:latency=1s;latency=2s", "latency is given twice"),
        ("links.add_link:latency=1s,links.add_link:latency=2s", "the same fault twice"),
    ],
)
def test_malformed_faults_are_refused_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match="DELINKCIOUS_FAULTS") as caught:
        parse_faults(text)
    assert reason in str(caught.value)


def test_validate_refuses_unknown_services_and_methods() -> None:
    protocols = {"store": Store}
    validate_faults(parse_faults("store.put:error=0.1"), protocols)
    with pytest.raises(ValueError, match="no service 'links'"):
        validate_faults(parse_faults("links.put:error=0.1"), protocols)
    with pytest.raises(ValueError, match=r"no method 'delete'.*get, put"):
        validate_faults(parse_faults("store.delete:error=0.1"), protocols)


# --- the middleware ------------------------------------------------------------------------------


def faulty(
    text: str,
    rng: Callable[[], float] = lambda: 0.5,
    sleep: Callable[[float], Awaitable[Any]] | None = None,
) -> tuple[Store, Core, FakeSleep]:
    core = Core()
    fake_sleep = FakeSleep()
    around = faults_middleware(parse_faults(text), rng=rng, sleep=sleep or fake_sleep)
    return wrap(Store, "store", core, around), core, fake_sleep


async def test_a_wrapped_service_still_implements_its_protocol() -> None:
    service, _, _ = faulty("store.put:latency=1s")
    assert isinstance(service, Store)


async def test_latency_is_added_to_the_named_method_only() -> None:
    service, core, sleep = faulty("store.put:latency=6s")
    assert await service.put("a") == "a"
    assert sleep.slept == [6.0]
    assert await service.get("b") == "b"
    assert sleep.slept == [6.0]
    assert core.calls == ["put a", "get b"]


async def test_real_latency_with_a_real_sleep() -> None:
    core = Core()
    service = wrap(Store, "store", core, faults_middleware(parse_faults("store.get:latency=30ms")))
    start = time.perf_counter()
    assert await service.get("x") == "x"
    assert time.perf_counter() - start >= 0.03


async def test_errors_follow_the_rate_and_never_reach_the_service() -> None:
    draws = iter([0.1, 0.25, 0.9, 0.0])
    service, core, _ = faulty("store.get:error=0.25", rng=lambda: next(draws))
    for key in ("a", "b", "c", "d"):
        try:
            await service.get(key)
        except Unavailable as exc:
            assert exc.code == "injected_fault"
            assert exc.message == "injected fault"
    assert core.calls == ["get b", "get c"]  # 0.1 and 0.0 fail (below 0.25); 0.25, 0.9 pass


async def test_rates_zero_and_one() -> None:
    always, _, _ = faulty("store.put:error=1", rng=lambda: 0.999999)
    with pytest.raises(Unavailable):
        await always.put("a")
    never, _, _ = faulty("store.put:error=0", rng=lambda: 0.0)
    assert await never.put("a") == "a"


async def test_latency_comes_before_the_failure() -> None:
    service, core, sleep = faulty("store.put:latency=2s;error=1")
    with pytest.raises(Unavailable):
        await service.put("a")
    assert sleep.slept == [2.0]
    assert core.calls == []


async def test_other_services_with_the_same_method_are_untouched() -> None:
    core = Core()
    around = faults_middleware(parse_faults("other.get:error=1"), rng=lambda: 0.0)
    service = wrap(Store, "store", core, around)
    assert await service.get("a") == "a"


async def test_service_errors_pass_through_unchanged() -> None:
    service, core, _ = faulty("store.put:latency=1s")
    with pytest.raises(NotFound) as caught:
        await service.get("missing")
    assert caught.value is core.error
    service, core, _ = faulty("store.get:latency=1s")
    with pytest.raises(NotFound) as caught:
        await service.get("missing")
    assert caught.value is core.error
