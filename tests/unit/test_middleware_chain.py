"""``wrap`` with several layers, and the ``Chain`` every service goes through."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, runtime_checkable

import pytest

from delinkcious.model.markers import idempotent, is_idempotent
from delinkcious.platform.middleware import Around, Invocation, wrap
from delinkcious.platform.middleware.chain import Chain
from delinkcious.platform.middleware.faults import parse_faults


@runtime_checkable
class Counter(Protocol):
    async def add(self, amount: int, *, note: str = "") -> int:
        """Add to the total."""
        ...

    @idempotent
    async def total(self) -> int: ...


class Core:
    def __init__(self) -> None:
        self.value = 0
        self.error = ValueError("negative")

    async def add(self, amount: int, *, note: str = "") -> int:
        if amount < 0:
            raise self.error
        self.value += amount
        return self.value

    async def total(self) -> int:
        return self.value


def recording(name: str, seen: list[tuple[str, Invocation]]) -> Around:
    async def around(invocation: Invocation, proceed: Callable[[], Awaitable[Any]]) -> Any:
        seen.append((f"{name} in", invocation))
        try:
            return await proceed()
        finally:
            seen.append((f"{name} out", invocation))

    around.__name__ = name
    return around


async def test_the_first_layer_is_innermost_and_all_share_one_invocation() -> None:
    seen: list[tuple[str, Invocation]] = []
    core = Core()
    counter = wrap(Counter, "counter", core, recording("a", seen), recording("b", seen))
    assert await counter.add(2, note="x") == 2
    assert [step for step, _ in seen] == ["b in", "a in", "a out", "b out"]
    [invocation] = {id(invocation): invocation for _, invocation in seen}.values()
    assert (invocation.service, invocation.method.name) == ("counter", "add")
    assert invocation.arguments() == {"amount": 2, "note": "x"}
    assert core.value == 2


async def test_a_wrapped_service_keeps_its_protocol_markers_and_errors() -> None:
    seen: list[tuple[str, Invocation]] = []
    core = Core()
    counter = wrap(Counter, "counter", core, recording("a", seen), recording("b", seen))
    assert isinstance(counter, Counter)
    assert is_idempotent(type(counter).total) and not is_idempotent(type(counter).add)
    assert type(counter).add.__doc__ == "Add to the total."
    assert type(counter).__name__ == "CounterViaBA"
    assert repr(counter).startswith("<b of a of <")
    with pytest.raises(ValueError) as raised:
        await counter.add(-1)
    assert raised.value is core.error
    assert [step for step, _ in seen][-1] == "b out"  # every layer saw it fail


async def test_a_layer_may_answer_without_calling_the_next() -> None:
    async def cached(invocation: Invocation, proceed: Callable[[], Awaitable[Any]]) -> Any:
        return 42 if invocation.method.name == "total" else await proceed()

    seen: list[tuple[str, Invocation]] = []
    counter = wrap(Counter, "counter", Core(), recording("inner", seen), cached)
    assert await counter.total() == 42
    assert seen == []
    assert await counter.add(1) == 1
    assert [step for step, _ in seen] == ["inner in", "inner out"]


def test_wrap_needs_a_layer() -> None:
    with pytest.raises(ValueError, match="at least one"):
        wrap(Counter, "counter", Core())


async def test_the_chain_puts_faults_innermost_and_tracing_outermost() -> None:
    chain = Chain("1.0", parse_faults("counter.add:error=1"))
    counter = chain.apply(Counter, "counter", Core())
    assert repr(counter).startswith("<tracing of metrics of logging of faults of <")
    assert isinstance(counter, Counter)
    assert await counter.total() == 0


def test_a_chain_with_nothing_to_do_returns_the_core_itself() -> None:
    core = Core()
    assert Chain("1.0", {}, enabled=False).apply(Counter, "counter", core) is core
