"""The traffic shaper's decisions, on their own: route tables, sticky canary buckets,
overrides, per-method targeting, balancing, ejection and table replacement."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from delinkcious.platform.routing.router import (
    ALWAYS,
    CANARY,
    CANARY_OVERRIDE,
    NEVER,
    STABLE,
    Replica,
    Router,
    ServiceRoute,
    bucket,
    key_of,
)
from delinkcious.platform.routing.table import RouteTable, RouteTableError, parse_table

METHODS = {
    "links": frozenset({"get_links", "add_link", "update_link", "delete_link"}),
    "users": frozenset({"register", "login", "logout", "resolve_session", "get_user"}),
}
STABLE_URLS = ["http://127.0.0.1:5001", "http://127.0.0.1:5006", "http://127.0.0.1:5007"]
CANARY_URL = "http://127.0.0.1:5010"


def table(**route: object) -> RouteTable:
    return parse_table(
        {"routes": {"links": {"stable": STABLE_URLS, "canary": [CANARY_URL], **route}}}, METHODS
    )


def links(routes: RouteTable) -> ServiceRoute:
    return Router(routes, {"links": "http://links", "users": "http://users"}).route("links")


def pick(route: ServiceRoute, method: str, user: str) -> Replica:
    replica = route.choose(method, user)
    assert replica is not None
    return replica


def users(count: int) -> list[str]:
    rng = random.Random(7)
    return [f"user{rng.getrandbits(48):x}" for _ in range(count)]


# -- the table -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"routes": {"links": {"stable": []}}}, "routes.links.stable: Tuple should have"),
        ({"routes": {"links": {"stable": ["ftp://x"]}}}, "is not an http(s) URL with a host"),
        ({"routes": {"links": {"stable": ["http://x/path"]}}}, "only scheme://host[:port]"),
        ({"routes": {"links": {"stable": ["http://x"], "weight": 5}}}, "routes.links.weight:"),
        (
            {
                "routes": {
                    "links": {
                        "stable": ["http://x"],
                        "canary": ["http://y"],
                        "canary_weight": 10_001,
                    }
                }
            },
            "less than or equal to 10000",
        ),
        ({"routes": {"linkz": {"stable": ["http://x"]}}}, "routes.linkz: no such service"),
        (
            {
                "routes": {
                    "links": {
                        "stable": ["http://x"],
                        "canary": ["http://y"],
                        "canary_methods": ["get_link"],
                    }
                }
            },
            "links has no method 'get_link'",
        ),
        (
            {"routes": {"links": {"stable": ["http://x"], "canary_weight": 100}}},
            "canary_weight set but no canary replicas",
        ),
        ({"balance": "random"}, "balance: Input should be 'least_outstanding' or 'round_robin'"),
        (["links"], "the table: Input should be a valid dictionary"),
    ],
)
def test_a_bad_table_is_refused_saying_where(data: object, reason: str) -> None:
    with pytest.raises(RouteTableError) as caught:
        parse_table(data, METHODS)
    assert reason in str(caught.value)


def test_an_empty_table_routes_every_service_to_its_url() -> None:
    router = Router(parse_table(None, METHODS), {"links": "http://links:8080"})
    (replica,) = [router.route("links").choose("get_links", "ada")]
    assert replica is not None and (replica.url, replica.pool) == ("http://links:8080", STABLE)


# -- canary weight, stickiness, overrides, targeting ----------------------------------------


def test_ten_percent_of_ten_thousand_requests_from_a_thousand_users_go_to_the_canary() -> None:
    route = links(table(canary_weight=1_000))
    population = users(1_000)
    rng = random.Random(11)
    requests = [rng.choice(population) for _ in range(10_000)]
    seen: dict[str, set[str]] = {}
    for user in requests:
        replica = route.choose("get_links", user)
        assert replica is not None
        seen.setdefault(user, set()).add(replica.pool)
    share = sum(route.pool_for("get_links", user) == CANARY for user in requests) / len(requests)
    assert abs(share - 0.10) <= 0.01, share
    assert all(len(pools) == 1 for pools in seen.values())  # each user sees one version
    canary_users = sum(pools == {CANARY} for pools in seen.values()) / len(seen)
    assert abs(canary_users - 0.10) <= 0.02, canary_users


def test_raising_the_weight_only_moves_users_from_stable_to_canary() -> None:
    population = users(2_000)
    before = links(table(canary_weight=1_000))
    after = links(table(canary_weight=2_500))
    moved = Counter(
        (before.pool_for("get_links", user), after.pool_for("get_links", user))
        for user in population
    )
    assert moved[(CANARY, STABLE)] == 0
    assert moved[(STABLE, CANARY)] > 0 and moved[(CANARY, CANARY)] > 0


def test_the_salt_picks_another_set_of_users() -> None:
    population = users(2_000)
    first = {u for u in population if links(table(canary_weight=1_000)).pool_for("x", u) == CANARY}
    other = links(table(canary_weight=1_000, salt="links-2026-12"))
    second = {u for u in population if other.pool_for("x", u) == CANARY}
    assert first and second and first != second
    assert bucket("s", "ada") == bucket("s", "ada")


@pytest.mark.parametrize(("override", "pool"), [(ALWAYS, CANARY), (NEVER, STABLE)])
def test_a_testers_override_is_obeyed_on_every_request(override: str, pool: str) -> None:
    route = links(table(canary_weight=5_000))
    token = CANARY_OVERRIDE.set(override)
    try:
        picked = {pick(route, "get_links", user).pool for user in users(1_000)}
    finally:
        CANARY_OVERRIDE.reset(token)
    assert picked == {pool}


def test_per_method_targeting_sends_no_other_method_to_the_canary() -> None:
    route = links(table(canary_weight=10_000, canary_methods=["get_links"]))
    token = CANARY_OVERRIDE.set(ALWAYS)  # not even a tester's override
    try:
        for user in users(500):
            assert route.pool_for("get_links", user) == CANARY
            for method in ("add_link", "update_link", "delete_link"):
                assert route.pool_for(method, user) == STABLE
                replica = route.choose(method, user)
                assert replica is not None and replica.pool == STABLE
    finally:
        CANARY_OVERRIDE.reset(token)


def test_anonymous_calls_are_keyed_on_what_they_are_about() -> None:
    class Request:
        username = "ada"

    assert key_of({"request": Request()}) == "ada"
    assert key_of({"username": "bob", "password": "x"}) == "bob"
    assert key_of({"token": "t0k3n"}) == "t0k3n"
    assert key_of({}) == ""


# -- balancing, ejection, replacement -------------------------------------------------------


def test_least_outstanding_prefers_the_replica_with_fewest_calls_in_flight() -> None:
    route = links(table())
    first, second, third = route._router.compiled("links").pools[STABLE].replicas
    first.outstanding, second.outstanding, third.outstanding = 3, 0, 2
    assert {pick(route, "add_link", f"u{n}").url for n in range(20)} == {second.url}


def test_round_robin_takes_turns() -> None:
    route = links(
        parse_table(
            {"balance": "round_robin", "routes": {"links": {"stable": STABLE_URLS}}}, METHODS
        )
    )
    picked = [pick(route, "add_link", "u").url for _ in range(6)]
    assert sorted(picked) == sorted(STABLE_URLS * 2)


def test_an_ejected_replica_gets_nothing_until_it_is_all_that_is_left() -> None:
    route = links(table())
    replicas = route._router.compiled("links").pools[STABLE].replicas
    replicas[0].eject("refused a connection")
    assert all(route.choose("add_link", f"u{n}") is not replicas[0] for n in range(30))
    for replica in replicas[1:]:
        replica.eject("down")
    # Nothing healthy in the stable pool: add_link may not go to the canary (no weight,
    # but the pool exists and the method may reach it), so the canary serves first.
    fallback = route.choose("add_link", "u")
    assert fallback is not None and fallback.url == CANARY_URL
    tried: tuple[Replica, ...] = (fallback,)
    last = route.choose("add_link", "u", tried)
    assert last is not None and last.pool == STABLE  # an ejected one, as a last resort


def test_a_new_table_keeps_the_state_of_replicas_that_stay() -> None:
    router = Router(table(canary_weight=100), {"links": "http://links"})
    kept = router.compiled("links").pools[STABLE].replicas[1]
    kept.outstanding, kept.version = 4, "0.1.0"
    kept.eject("down")
    router.replace(parse_table({"routes": {"links": {"stable": STABLE_URLS[1:]}}}, METHODS))
    (same, _) = router.compiled("links").pools[STABLE].replicas
    assert same is kept and same.outstanding == 4 and not same.healthy
    assert router.compiled("links").pools[CANARY].replicas == []
    assert router.describe()["routes"]["links"]["canary_weight"] == 0


async def test_readiness_needs_one_ready_replica() -> None:
    router = Router(table(), {"links": "http://links"})
    await router.ready("links")
    for replica in router.replicas():
        replica.eject("/readyz answered 503 (failing: nats)")
    with pytest.raises(Exception, match=r"no ready replica.*failing: nats"):
        await router.ready("links")
