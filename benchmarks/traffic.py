"""Prove the traffic shaper's claims at full size on ``up --processes``, and print the figures.

Four parts, each on real processes over real HTTP, on backends of its own on the shared
PostgreSQL, Redis and NATS (databases, stream, subjects and key prefix named for the run,
all dropped at the end). Saved links point at 127.0.0.1:9 (nothing listens; the checker
may reach only 127.0.0.1/32). Figures are printed, never asserted.

1. Canary at 10 %: ``up --processes --replicas links=2 --canary links=9.9.9-canary``,
   1,000 users, 10 ``GET /v1/links`` each; the version that answered is read from
   ``Delinkcious-Served-By``. Then the weight raised to 25 % (who moved where), the
   ``Delinkcious-Canary`` override, and a canary limited to ``get_links``.
2. The route table changed 20 times, then made malformed, under ``wrk``.
3. ``kill -9`` of each single-replica service and of one links replica under load: how
   long until the API answers again, what failed meanwhile, whether an acknowledged write
   was lost.
4. Balancing, ``least_outstanding`` against ``round_robin``, over three links replicas
   started by hand (one slowed down by fault injection, then all equally fast).

    .venv/bin/python benchmarks/traffic.py [--users 1000] [--requests-per-user 10]
        [--seconds 15] [--threads 2] [--connections 16]

With two CPUs or more the services run on CPU 0, wrk and this script on the others.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import math
import os
import platform
import random
import re
import secrets
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from delinkcious.cli.processes import initial
from delinkcious.platform.routing.router import bucket
from delinkcious.registry import NAMES
from list_links import (
    BIN,
    HOST,
    SERVER_PIN,
    WRK_PIN,
    BenchmarkError,
    WrkResult,
    in_scratch_dir,
    local_client,
    parse_wrk,
    require_wrk,
    run_wrk,
    spawn,
    stop_cleanly_on_signals,
    wait_checked,
    write_lua,
)
from resources import Run, drop_backends, expect, free_ports, isolated_env, stop, wait_ready

CANARY = "9.9.9-canary"
PASSWORD = "correct horse battery staple"
SERVED_BY = "delinkcious-served-by"
OVERRIDE = "Delinkcious-Canary"
DEAD_TARGET = "http://127.0.0.1:9"  # nothing listens: the checker never leaves this host

REGISTER_IN_FLIGHT = 4  # argon2 costs ~30 ms a hash; the users service does two at a time
REQUESTS_IN_FLIGHT = 16
WEIGHT, RAISED_WEIGHT = 1000, 2500  # basis points
RAISED_REQUESTS_PER_USER = 5
OVERRIDES = 500  # requests per override value
TARGETED_ADDS = 200
RELOAD_TIMEOUT_S = 10.0
POLL_S = 0.02

TABLE_CHANGES = 20
CHANGE_EVERY_S = 1.0
LEAD_S = 2.0  # wrk runs alone this long before the first change, and after the last

KILL_AFTER_S = 1.0  # load alone before the kill
WATCH_AT_LEAST_S = 3.0  # after the kill, and after the API answers again: 1 s more
OUTAGE_TIMEOUT_S = 30.0
# About half of what the services' one CPU can take (each add also sets off a link
# check, its event and a news fan-out): latency stays that of a loaded, not drowning, API.
READS_PER_S, WRITES_PER_S = 50.0, 10.0
READERS = 20
# The call that needs each victim, and how often it is sent (logins cost argon2).
# link_checker: no API call waits for it (checks are events), so its own /readyz.
NEEDS: dict[str, tuple[str, str, float]] = {
    "links": ("GET", "/v1/links", 10.0),
    "gateway": ("GET", "/v1/links", 10.0),
    "users": ("POST", "/v1/sessions", 5.0),
    "social_graph": ("GET", "/v1/following", 10.0),
    "news": ("GET", "/v1/news", 10.0),
    "link_checker": ("GET", "/readyz", 10.0),
}
VICTIMS = ("links-2", "gateway", "users", "social_graph", "news", "link_checker")

SLOW_FAULT = "links.get_links:latency=50ms"
LB_LINKS = 10  # links of the balancing user; wrk reads ?limit=10
BALANCES = ("least_outstanding", "round_robin")
LB_LOW_CONNECTIONS = 4  # below saturation of the services' one CPU
WARMUP_S = 2
ROUND_S = 3
SETTLE_S = 3.0

T = TypeVar("T")


# --- the system under test --------------------------------------------------------------------


@dataclass
class Shaped:
    """A running ``up --processes`` with two stable links replicas and a canary of links."""

    run: Run
    data_dir: Path
    ports: dict[str, int]  # by process name: gateway, links, links-2, links-canary, ...

    @property
    def url(self) -> str:
        return self.run.url

    @property
    def routes(self) -> Path:
        return self.data_dir / "routes.yaml"

    def admin_headers(self) -> dict[str, str]:
        token = (self.data_dir / "admin-token").read_text().strip()
        return {"Authorization": f"Bearer {token}"}

    def output(self) -> str:
        return self.run.log.read_text(errors="replace")


@contextlib.contextmanager
def shaped_system(workdir: Path, env: dict[str, str]) -> Iterator[Shaped]:
    """``up --processes --replicas links=2 --canary links=CANARY`` (pinned); always stopped."""
    counts, canaries = {"links": 2}, {"links": CANARY}
    port = free_ports(len(initial(0, counts, canaries)[0]))
    data_dir = workdir / "data"
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "up.log"
    command = [
        *SERVER_PIN, sys.executable, str(BIN), "up", "--processes",
        "--port", str(port), "--data-dir", str(data_dir),
        "--replicas", "links=2", "--canary", f"links={CANARY}",
    ]  # fmt: skip
    started = time.monotonic()
    run = Run(spawn(command, log, env), port, log)
    try:
        wait_ready(run)
        print(f"up --processes ready in {time.monotonic() - started:.1f} s on {run.url}")
        names = {p.name: p.port for p in initial(port, counts, canaries)[0]}
        yield Shaped(run, data_dir, names)
    finally:
        stop(run)


def admin_state(client: httpx.Client, headers: Mapping[str, str]) -> dict[str, Any] | None:
    """``GET /admin/routes``; None while the gateway does not answer (it may be dead)."""
    try:
        response = client.get("/admin/routes", headers=dict(headers), timeout=2)
    except httpx.TransportError:
        return None
    if response.status_code != 200:
        return None
    state: dict[str, Any] = response.json()
    return state


def write_atomically(path: Path, text: str) -> None:
    """A whole new file in one rename: a reader never sees half of it (as with a ConfigMap)."""
    fresh = path.with_name(path.name + ".new")
    fresh.write_text(text)
    os.replace(fresh, path)


def in_force(state: Mapping[str, Any], table: Mapping[str, Any]) -> bool:
    """Whether the gateway's table in force is ``table`` as far as links is concerned."""
    wanted = table["routes"]["links"]
    route = state["routes"]["links"]
    methods = sorted(wanted["canary_methods"]) if wanted.get("canary_methods") else None
    return bool(
        state["balance"] == table.get("balance", "least_outstanding")
        and route["canary_weight"] == wanted.get("canary_weight", 0)
        and route["canary_methods"] == methods
        and [r["url"] for r in route["stable"]] == list(wanted["stable"])
    )


def wait_admin(
    url: str,
    headers: Mapping[str, str],
    done: Callable[[dict[str, Any]], bool],
    what: str,
    since: float | None = None,
) -> float:
    """Poll ``/admin/routes`` until ``done`` says so; the seconds since ``since`` (or now)."""
    since = time.monotonic() if since is None else since
    with local_client(url) as client:
        while time.monotonic() - since < RELOAD_TIMEOUT_S:
            state = admin_state(client, headers)
            if state is not None and done(state):
                return time.monotonic() - since
            time.sleep(POLL_S)
    raise BenchmarkError(f"the gateway did not show {what} within {RELOAD_TIMEOUT_S:.0f} s")


def apply_table(url: str, headers: Mapping[str, str], path: Path, table: dict[str, Any]) -> float:
    """Write the table; the seconds until the gateway has it in force."""
    write_atomically(path, yaml.safe_dump(table, sort_keys=False))
    written = time.monotonic()
    return wait_admin(url, headers, lambda state: in_force(state, table), "the new table", written)


def read_table(path: Path) -> dict[str, Any]:
    table: dict[str, Any] = yaml.safe_load(path.read_text())
    return table


def served(response: httpx.Response) -> dict[str, str]:
    """``Delinkcious-Served-By: gateway=V, links=V`` as a dict."""
    pairs = (
        entry.strip().partition("=") for entry in response.headers.get(SERVED_BY, "").split(",")
    )
    return {name: version for name, sep, version in pairs if sep}


# --- requests ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One public request of a user: a list of their links, or (``add``) saving one."""

    user: str
    token: str
    override: str | None = None
    add: str | None = None


@dataclass(frozen=True)
class Answer:
    """What came back: enough to tell which version served whom."""

    user: str
    status: int  # 0: no HTTP answer at all
    links: str | None  # the links version Delinkcious-Served-By names


def new_username() -> str:
    """Random, so each run samples other buckets (a fixed set would always give one share)."""
    return f"u{secrets.token_hex(5)}"


async def register_users(base_url: str, count: int) -> dict[str, str]:
    """``count`` fresh users, registered and logged in a few at a time; username -> token."""
    gate = asyncio.Semaphore(REGISTER_IN_FLIGHT)
    async with httpx.AsyncClient(base_url=base_url, trust_env=False, timeout=60) as client:

        async def one(name: str) -> tuple[str, str]:
            account = {"username": name, "email": f"{name}@example.com", "password": PASSWORD}
            async with gate:
                expect(await client.post("/v1/users", json=account), 201)
                login = {"username": name, "password": PASSWORD}
                session = expect(await client.post("/v1/sessions", json=login), 201)
            return name, str(session.json()["access_token"])

        return dict(await asyncio.gather(*(one(new_username()) for _ in range(count))))


async def send_all(base_url: str, calls: Sequence[Call]) -> list[Answer]:
    """Every call, ``REQUESTS_IN_FLIGHT`` at a time, in the order given."""
    gate = asyncio.Semaphore(REQUESTS_IN_FLIGHT)
    limits = httpx.Limits(max_connections=REQUESTS_IN_FLIGHT)
    async with httpx.AsyncClient(
        base_url=base_url, trust_env=False, timeout=30, limits=limits
    ) as client:

        async def one(call: Call) -> Answer:
            headers = {"Access-Token": call.token}
            if call.override is not None:
                headers[OVERRIDE] = call.override
            async with gate:
                try:
                    if call.add is None:
                        response = await client.get(
                            "/v1/links", params={"limit": 10}, headers=headers
                        )
                    else:
                        body = {"url": call.add, "title": "added with an override"}
                        response = await client.post("/v1/links", json=body, headers=headers)
                except httpx.HTTPError:
                    return Answer(call.user, 0, None)
            return Answer(call.user, response.status_code, served(response).get("links"))

        return list(await asyncio.gather(*(one(call) for call in calls)))


def spread(tokens: Mapping[str, str], per_user: int) -> list[Call]:
    """``per_user`` calls of every user, interleaved: rounds over all users, each shuffled."""
    calls: list[Call] = []
    users = list(tokens)
    for _ in range(per_user):
        random.shuffle(users)
        calls.extend(Call(user, tokens[user]) for user in users)
    return calls


def by_user(answers: Sequence[Answer]) -> dict[str, set[str]]:
    """The links versions each user was answered by (successful answers only)."""
    seen: dict[str, set[str]] = {}
    for answer in answers:
        if answer.status == 200 and answer.links is not None:
            seen.setdefault(answer.user, set()).add(answer.links)
    return seen


# --- report -----------------------------------------------------------------------------------


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A plain table: first column left-aligned, the others right-aligned."""
    widths = [max(len(str(row[i])) for row in (header, *rows)) for i in range(len(header))]
    print(f"\n{title}")
    for row in (header, *rows):
        cells = [
            f"{cell:<{widths[i]}}" if i == 0 else f"{cell:>{widths[i]}}"
            for i, cell in enumerate(row)
        ]
        print("  " + "  ".join(cells).rstrip())


def pct(part: float, whole: float) -> str:
    return f"{part / whole * 100:.2f} %" if whole else "n/a"


def mark(ok: bool) -> str:
    """A verdict beside a figure; printed, never raised (a benchmark, not a test)."""
    return "as claimed" if ok else "NOT AS CLAIMED"


# --- part 1: the canary --------------------------------------------------------------------------


def part_canary(shaped: Shaped, args: argparse.Namespace) -> dict[str, str]:
    """10 % canary, sticky users, the weight raised, overrides, per-method targeting.

    Returns the users (username -> token): part 2 and part 3 read as them."""
    print("\n=== 1. canary at 10 % ===")
    print(
        f"  fresh random users; each sends {args.requests_per_user} GET /v1/links, interleaved\n"
        f"  over all users, {REQUESTS_IN_FLIGHT} in flight; the links version is read from\n"
        "  Delinkcious-Served-By; weights are written to routes.yaml (one rename) and waited\n"
        "  for at /admin/routes before any request"
    )
    url, admin = shaped.url, shaped.admin_headers()
    with local_client(url) as client:
        stable = str(client.get("/version").raise_for_status().json()["version"])
    good = read_table(shaped.routes)

    started = time.monotonic()
    tokens = asyncio.run(register_users(url, args.users))
    print(
        f"registered and logged in {len(tokens):,} users in {time.monotonic() - started:.1f} s "
        f"({REGISTER_IN_FLIGHT} at a time)"
    )
    table = copy.deepcopy(good)
    table["routes"]["links"]["canary_weight"] = WEIGHT
    took = apply_table(url, admin, shaped.routes, table)
    print(f"canary_weight {WEIGHT} in force at the gateway {took:.2f} s after the write")
    salt = _salt(url, admin)

    started = time.monotonic()
    first = asyncio.run(send_all(url, spread(tokens, args.requests_per_user)))
    print(
        f"{len(first):,} GET /v1/links?limit=10 in {time.monotonic() - started:.1f} s, "
        f"{REQUESTS_IN_FLIGHT} in flight"
    )
    rows = canary_rows(first, tokens, salt, WEIGHT, stable)

    table["routes"]["links"]["canary_weight"] = RAISED_WEIGHT
    apply_table(url, admin, shaped.routes, table)
    raised = asyncio.run(send_all(url, spread(tokens, RAISED_REQUESTS_PER_USER)))
    rows += raised_rows(first, raised, salt)

    users = list(tokens)
    always = [Call(u, tokens[u], override="always") for u in users[:OVERRIDES]]
    never = [Call(u, tokens[u], override="never") for u in users[::-1][:OVERRIDES]]
    answers = asyncio.run(send_all(url, always + never))
    for choice, wanted, part in (
        ("always", CANARY, answers[: len(always)]),
        ("never", stable, answers[len(always) :]),
    ):
        obeyed = sum(a.status == 200 and a.links == wanted for a in part)
        share = f"{obeyed} of {len(part)} ({pct(obeyed, len(part))})"
        rows.append(
            (f"{OVERRIDE}: {choice} -> {wanted}", share, "100 %", mark(obeyed == len(part)))
        )

    table["routes"]["links"] |= {"canary_weight": 10_000, "canary_methods": ["get_links"]}
    apply_table(url, admin, shaped.routes, table)
    picked = users[:TARGETED_ADDS]
    nonce = secrets.token_hex(3)
    adds = [
        Call(u, tokens[u], override="always", add=f"{DEAD_TARGET}/targeted/{nonce}/{i}")
        for i, u in enumerate(picked)
    ]
    added = asyncio.run(send_all(url, adds))
    lists = asyncio.run(send_all(url, [Call(u, tokens[u]) for u in picked]))
    acked = sum(a.status == 201 for a in added)
    on_canary = sum(a.status == 201 and a.links == CANARY for a in added)
    listed = sum(a.status == 200 and a.links == CANARY for a in lists)
    rows += [
        ("canary_methods [get_links], weight 10000:", "", "", ""),
        (f"  adds with {OVERRIDE}: always, acknowledged", f"{acked} of {len(added)}", "all",
         mark(acked == len(added))),
        ("  ... of them served by the canary", f"{on_canary}", "0", mark(on_canary == 0)),
        ("  lists (no header) served by the canary", f"{listed} of {len(lists)}", "all",
         mark(listed == len(lists))),
    ]  # fmt: skip
    print_table(
        f"canary {CANARY} beside stable {stable} (2 stable replicas, 1 canary)",
        ("figure", "measured", "claim", ""),
        rows,
    )
    apply_table(url, admin, shaped.routes, good)  # back to weight 0 for the next parts
    return tokens


def _salt(url: str, admin: Mapping[str, str]) -> str:
    with local_client(url) as client:
        state = admin_state(client, admin)
    if state is None:
        raise BenchmarkError("/admin/routes did not answer")
    return str(state["routes"]["links"]["salt"])


def canary_rows(
    answers: Sequence[Answer], tokens: Mapping[str, str], salt: str, weight: int, stable: str
) -> list[tuple[str, str, str, str]]:
    """Shares of requests and users on the canary; stickiness; agreement with the buckets."""
    ok = [a for a in answers if a.status == 200 and a.links is not None]
    on_canary = sum(a.links == CANARY for a in ok)
    seen = by_user(answers)
    canary_users = sum(versions == {CANARY} for versions in seen.values())
    one = sum(len(versions) == 1 for versions in seen.values())
    agree = sum(
        versions == {CANARY if bucket(salt, user) < weight else stable}
        for user, versions in seen.items()
    )
    share = on_canary / len(ok) * 100 if ok else 0.0
    target = weight / 100
    bucketed = sum(bucket(salt, user) < weight for user in seen)
    # A user's bucket is a hash: the share of a sample of users is binomial around the weight.
    sigma = (target * (100 - target) / max(len(seen), 1)) ** 0.5
    chance = binomial_within(len(seen), weight / 10_000, 0.01)
    return [
        (f"requests (GET /v1/links, {len(tokens):,} users)", f"{len(answers):,}", ">= 10,000",
         mark(len(answers) >= 10_000)),
        ("  answered 200", f"{len(ok):,}", "all", mark(len(ok) == len(answers))),
        ("  on the canary", f"{share:.2f} % ({on_canary:,})", f"{target:.0f} % +- 1 point",
         mark(abs(share - target) <= 1.0)),
        ("users on the canary", f"{pct(canary_users, len(seen))} ({canary_users})",
         f"~{target:.0f} %", ""),
        ("  whose buckets are below the weight", f"{pct(bucketed, len(seen))} ({bucketed})",
         f"+- {sigma:.2f} points (1 sigma)", ""),
        (f"  chance that {len(seen):,} random users are within 1 point", f"{chance * 100:.0f} %",
         "", ""),
        ("users who saw exactly one version", f"{pct(one, len(seen))} ({one} of {len(seen)})",
         "100 %", mark(one == len(seen))),
        ("users on the version their bucket names", f"{agree} of {len(seen)}", "all",
         mark(agree == len(seen))),
    ]  # fmt: skip


def binomial_within(n: int, p: float, margin: float) -> float:
    """P(the share of n draws at probability p is within ``margin`` of p): how often the
    claim "within 1 point" holds for a fresh set of users, however right the routing is."""
    lo, hi = math.ceil(n * (p - margin) - 1e-9), math.floor(n * (p + margin) + 1e-9)
    return sum(
        math.exp(
            math.lgamma(n + 1)
            - math.lgamma(k + 1)
            - math.lgamma(n - k + 1)
            + k * math.log(p)
            + (n - k) * math.log1p(-p)
        )
        for k in range(max(lo, 0), min(hi, n) + 1)
    )


def raised_rows(
    before: Sequence[Answer], after: Sequence[Answer], salt: str
) -> list[tuple[str, str, str, str]]:
    """Who moved when the weight went from WEIGHT to RAISED_WEIGHT: only stable -> canary."""
    was, now = by_user(before), by_user(after)
    moved_in = moved_out = 0
    for user, versions in now.items():
        old = was.get(user, set())
        if old != {CANARY} and versions == {CANARY}:
            moved_in += 1
        if old == {CANARY} and versions != {CANARY}:
            moved_out += 1
    ok = [a for a in after if a.status == 200 and a.links is not None]
    share = sum(a.links == CANARY for a in ok) / len(ok) * 100 if ok else 0.0
    one = sum(len(versions) == 1 for versions in now.values())
    expected_in = sum(WEIGHT <= bucket(salt, user) < RAISED_WEIGHT for user in now)
    return [
        (f"weight {WEIGHT} -> {RAISED_WEIGHT} ({len(after):,} more requests):", "", "", ""),
        ("  users moved stable -> canary", f"{moved_in}", f"{expected_in} (their buckets)",
         mark(moved_in == expected_in)),
        ("  users moved canary -> stable", f"{moved_out}", "0", mark(moved_out == 0)),
        ("  requests on the canary", f"{share:.2f} %", f"{RAISED_WEIGHT / 100:.0f} % +- 1 point",
         mark(abs(share - RAISED_WEIGHT / 100) <= 1.0)),
        ("  users who saw exactly one version", pct(one, len(now)), "100 %",
         mark(one == len(now))),
    ]  # fmt: skip


# --- part 2: table changes under load -----------------------------------------------------------


def part_changes(
    shaped: Shaped, users: Mapping[str, str], args: argparse.Namespace, wrk: str
) -> None:
    """20 good tables, then malformed ones, while wrk reads; nothing may fail."""
    print(f"\n=== 2. route table changes under wrk -t{args.threads} -c{args.connections} ===")
    url, admin = shaped.url, shaped.admin_headers()
    lua = write_lua(shaped.data_dir.parent / "auth.lua", next(iter(users.values())))
    target = f"{url}/v1/links?limit=10"
    good = read_table(shaped.routes)
    time.sleep(1.0)  # the callers of part 1's last table have all reloaded it (0.5 s polls)
    reloads_before = reload_lines(shaped.output())
    seconds = round(2 * LEAD_S + TABLE_CHANGES * CHANGE_EVERY_S)

    latencies: list[float] = []
    with ThreadPoolExecutor(1) as pool:
        load = pool.submit(run_wrk, wrk, target, lua, args, seconds)
        started = time.monotonic()
        time.sleep(LEAD_S)
        last: dict[str, Any] = good
        for n in range(TABLE_CHANGES):
            last = copy.deepcopy(good)
            route = last["routes"]["links"]
            route["canary_weight"] = 1 + n * 500  # the wrk user crosses stable <-> canary
            route["stable"] = route["stable"][n % 2 :] + route["stable"][: n % 2]
            last["balance"] = BALANCES[n % 2]
            latencies.append(apply_table(url, admin, shaped.routes, last))
            time.sleep(max(0.0, started + LEAD_S + (n + 1) * CHANGE_EVERY_S - time.monotonic()))
        changes_done = time.monotonic() - started
        changes = parse_wrk(load.result())
    late = changes_done > seconds - 0.5

    bad_seconds = 10
    refusals: list[tuple[str, float, str]] = []
    with ThreadPoolExecutor(1) as pool:
        load = pool.submit(run_wrk, wrk, target, lua, args, bad_seconds)
        time.sleep(LEAD_S)
        not_yaml = "routes:\n  links: {stable: [oops]\n"  # an unclosed flow mapping
        refusals.append(refuse(shaped, "not YAML", not_yaml))
        time.sleep(1.0)
        heavy = copy.deepcopy(last)
        heavy["routes"]["links"]["canary_weight"] = 20_000  # over 10 000 basis points
        refusals.append(refuse(shaped, "weight 20000", yaml.safe_dump(heavy)))
        malformed = parse_wrk(load.result())
    with local_client(url) as client:
        state = admin_state(client, admin)
    if state is None:
        raise BenchmarkError("/admin/routes did not answer after the malformed tables")
    kept = state["routes"]["links"]["canary_weight"]
    reloads = reload_lines(shaped.output())

    rows = [
        (f"{TABLE_CHANGES} good tables, one a second", changes, f"{seconds} s"),
        ("2 malformed tables", malformed, f"{bad_seconds} s"),
    ]
    print_table(
        "GET /v1/links?limit=10 of one user (wrk), while the route table changes",
        ("phase", "wrk run", "requests", "req/s", "non-2xx", "socket errors", "verdict"),
        [
            (name, duration, f"{r.requests:,}", f"{r.requests_per_s:.0f}", str(r.non_2xx),
             str(r.socket_errors), mark(r.non_2xx + r.socket_errors == 0))
            for name, r, duration in rows
        ],
    )  # fmt: skip
    print(
        f"  each change: canary_weight 1, 501, ... {1 + (TABLE_CHANGES - 1) * 500}, stable "
        f"replicas rotated, balance alternating; written, then waited for at /admin/routes"
    )
    print(
        f"  write -> in force at the gateway: median {statistics.median(latencies):.2f} s, "
        f"max {max(latencies):.2f} s (claim: within 0.5 s)  {mark(max(latencies) <= 0.55)}"
    )
    if late:
        print(f"  !!! the changes took {changes_done:.1f} s, longer than the wrk run !!!")
    counted = {tag: reloads[tag][0] - reloads_before[tag][0] for tag in reloads}
    refused = {tag: reloads[tag][1] - reloads_before[tag][1] for tag in reloads}
    print(
        "  'reloaded' log lines per process that routes calls: "
        + ", ".join(f"{tag} {count}" for tag, count in sorted(counted.items()))
        + f" (each should be {TABLE_CHANGES}); 'refused': "
        + ", ".join(f"{tag} {count}" for tag, count in sorted(refused.items()))
        + " (each should be 2)"
    )
    for what, took, reason in refusals:
        print(f"  {what}: /admin/routes showed refused {took:.2f} s after the write: {reason!r}")
    wanted = last["routes"]["links"]["canary_weight"]
    print(
        f"  after both: links canary_weight in force {kept} (the last good table's: {wanted})  "
        f"{mark(kept == wanted)}"
    )
    apply_table(url, admin, shaped.routes, good)
    wait_admin(url, admin, lambda s: s["refused"] is None, "the good table again")


def refuse(shaped: Shaped, what: str, text: str) -> tuple[str, float, str]:
    """Write a malformed table; wait until the gateway says it refused it (a new reason)."""
    url, admin = shaped.url, shaped.admin_headers()
    with local_client(url) as client:
        state = admin_state(client, admin)
    before = state["refused"] if state is not None else None
    write_atomically(shaped.routes, text)
    written = time.monotonic()
    took = wait_admin(
        url, admin, lambda s: s["refused"] is not None and s["refused"] != before, what, written
    )
    with local_client(url) as client:
        state = admin_state(client, admin)
    return what, took, str(state["refused"] if state is not None else None)


def reload_lines(output: str) -> dict[str, tuple[int, int]]:
    """Per process tag: how many 'route table ... reloaded' and '... refused' lines it logged."""
    counts: dict[str, tuple[int, int]] = {}
    for line in output.splitlines():
        tag, sep, rest = line.partition(" | ")
        if not sep or "route table" not in rest:
            continue
        reloaded, refused = counts.get(tag.strip(), (0, 0))
        counts[tag.strip()] = (
            reloaded + ("reloaded" in rest),
            refused + ("refused" in rest),
        )
    return counts


# --- part 3: kill -9 under load ------------------------------------------------------------------


@dataclass
class Outage:
    """What one kill -9 did, as the clients saw it."""

    victim: str
    back_s: float | None  # kill -> the first success of a call that needs the victim
    supervisor_s: float | None  # "X is back, N s after it died"
    calls: Counter[str] = field(default_factory=Counter)  # by kind
    failed: Counter[str] = field(default_factory=Counter)  # by "kind: reason"
    last_failure_s: float | None = None
    read_p50_ms: float | None = None  # the load's own latency, before the kill
    acknowledged_urls: set[str] = field(default_factory=set)
    acknowledged: int = 0
    lost: int = 0


def pid_on_port(port: int) -> int:
    """The ``serve`` process listening on ``port`` (by its argv: its pid changes on restart)."""
    wanted = [b"--port", str(port).encode()]
    for entry in Path("/proc").iterdir():
        argv = _argv(entry) if entry.name.isdigit() else []
        if b"serve" in argv and any(argv[i : i + 2] == wanted for i in range(len(argv))):
            return int(entry.name)
    raise BenchmarkError(f"no process serves port {port}")


def _argv(process: Path) -> list[bytes]:
    try:
        return (process / "cmdline").read_bytes().split(b"\0")
    except OSError:  # gone meanwhile, or not ours to read
        return []


def part_kills(shaped: Shaped, users: Mapping[str, str]) -> None:
    """Each victim killed in turn under an open-loop load; the system healed between them."""
    print(
        f"\n=== 3. kill -9 under load: {READS_PER_S:.0f} reads/s ({READERS} users), "
        f"{WRITES_PER_S:.0f} adds/s, and the call that needs the victim ==="
    )
    readers = list(users.values())[:READERS]
    writers = asyncio.run(register_users(shaped.url, len(VICTIMS)))
    outages = []
    for victim, (writer, token) in zip(VICTIMS, writers.items(), strict=True):
        backs = back_lines(shaped, victim)
        outage = asyncio.run(kill_under_load(shaped, victim, readers, writer, token))
        outage.supervisor_s = wait_back(shaped, victim, len(backs))
        wait_admin(shaped.url, shaped.admin_headers(), all_healthy, "every replica healthy")
        acknowledged = outage.acknowledged_urls
        listed = set(all_urls(shaped.url, token))
        outage.acknowledged, outage.lost = len(acknowledged), len(acknowledged - listed)
        outages.append(outage)
        print(f"  {victim}: killed and back; {outage.acknowledged} writes acknowledged", flush=True)
    print_outages(outages)


def all_healthy(state: Mapping[str, Any]) -> bool:
    """Every replica of every route in force is admitted: the system has healed."""
    return all(
        replica["healthy"]
        for route in state["routes"].values()
        for pool in ("stable", "canary")
        for replica in route[pool]
    )


async def kill_under_load(
    shaped: Shaped, victim: str, readers: Sequence[str], writer: str, token: str
) -> Outage:
    """Open loop (requests at fixed rates, whatever the answers): kill at 1 s, watch until
    the API answers again plus 1 s (at least 3 s after the kill)."""
    service = victim.split("-")[0]
    method, path, rate = NEEDS[service]
    port = shaped.ports[victim]
    loop = asyncio.get_running_loop()
    outage = Outage(victim, None, None)
    acknowledged: set[str] = set()
    failures: list[float] = []
    latencies: list[float] = []  # ms, of the reads answered before the kill
    killed = float("inf")
    back = asyncio.Event()
    stopping = asyncio.Event()
    tasks: set[asyncio.Task[None]] = set()
    limits = httpx.Limits(max_connections=400, max_keepalive_connections=100)
    async with httpx.AsyncClient(
        base_url=shaped.url, trust_env=False, timeout=10, limits=limits
    ) as client:

        async def attempt(kind: str, ok: int, send: Awaitable[httpx.Response]) -> bool:
            outage.calls[kind] += 1
            try:
                response = await send
            except httpx.HTTPError as exc:
                reason = type(exc).__name__
            else:
                if response.status_code == ok:
                    return True
                reason = str(response.status_code)
            outage.failed[f"{kind}: {reason}"] += 1
            failures.append(loop.time())
            return False

        async def read(n: int) -> None:
            headers = {"Access-Token": readers[n % len(readers)]}
            sent = loop.time()
            send = client.get("/v1/links", params={"limit": 10}, headers=headers)
            if await attempt("read", 200, send) and sent < killed:
                latencies.append((loop.time() - sent) * 1000)

        async def write(n: int) -> None:
            link = f"{DEAD_TARGET}/killed/{victim}/{n}"
            body = {"url": link, "title": f"added while {victim} was killed"}
            send = client.post("/v1/links", json=body, headers={"Access-Token": token})
            if await attempt("write", 201, send):
                acknowledged.add(link)

        async def probe(_: int) -> None:
            sent = loop.time()
            if service == "link_checker":
                send = client.get(f"http://{HOST}:{port}{path}")
                ok = 200
            elif method == "POST":
                send = client.post(path, json={"username": writer, "password": PASSWORD})
                ok = 201
            else:
                send = client.get(path, headers={"Access-Token": token})
                ok = 200
            if await attempt("probe", ok, send) and sent >= killed and not back.is_set():
                outage.back_s = loop.time() - killed
                back.set()

        async def paced(per_s: float, fire: Callable[[int], Coroutine[Any, Any, None]]) -> None:
            start, n = loop.time(), 0
            while not stopping.is_set():
                task = asyncio.create_task(fire(n))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                n += 1
                await asyncio.sleep(max(0.0, start + n / per_s - loop.time()))

        pacers = [
            asyncio.create_task(paced(READS_PER_S, read)),
            asyncio.create_task(paced(WRITES_PER_S, write)),
            asyncio.create_task(paced(rate, probe)),
        ]
        await asyncio.sleep(KILL_AFTER_S)
        os.kill(pid_on_port(port), signal.SIGKILL)
        killed = loop.time()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(back.wait(), OUTAGE_TIMEOUT_S)
        watched = loop.time() - killed
        await asyncio.sleep(max(1.0, WATCH_AT_LEAST_S - watched))
        stopping.set()
        await asyncio.gather(*pacers)
        await asyncio.gather(*list(tasks))
    after = [t - killed for t in failures if t >= killed]
    outage.last_failure_s = max(after) if after else None
    outage.acknowledged_urls = acknowledged
    outage.read_p50_ms = statistics.median(latencies) if latencies else None
    return outage


def back_lines(shaped: Shaped, victim: str) -> list[str]:
    """The supervisor's 'X is back, N s after it died' lines about ``victim`` so far."""
    pattern = re.compile(rf"^{re.escape(victim)} is back, ([\d.]+) s after it died", re.MULTILINE)
    return pattern.findall(shaped.output())


def wait_back(shaped: Shaped, victim: str, before: int) -> float | None:
    """The supervisor's own figure for the newest restart of ``victim``; None if none came."""
    deadline = time.monotonic() + OUTAGE_TIMEOUT_S
    while time.monotonic() < deadline:
        found = back_lines(shaped, victim)
        if len(found) > before:
            return float(found[-1])
        time.sleep(0.1)
    return None


def all_urls(base_url: str, token: str) -> list[str]:
    """Every url a user has saved, page by page."""
    urls: list[str] = []
    start: str | None = None
    with local_client(base_url, token) as client:
        while True:
            params: dict[str, str | int] = {
                "limit": 100,
                **({"start_token": start} if start else {}),
            }
            page = client.get("/v1/links", params=params).raise_for_status().json()
            urls += [link["url"] for link in page["links"]]
            start = page["next_page_token"]
            if not start:
                return urls


def print_outages(outages: Sequence[Outage]) -> None:
    rows = []
    for o in outages:
        calls, failed = sum(o.calls.values()), sum(o.failed.values())
        rows.append(
            (
                o.victim,
                f"{o.read_p50_ms:.0f} ms" if o.read_p50_ms is not None else "?",
                f"{o.back_s:.2f} s" if o.back_s is not None else "never",
                f"{o.supervisor_s:.1f} s" if o.supervisor_s is not None else "?",
                f"{o.last_failure_s:.2f} s" if o.last_failure_s is not None else "-",
                f"{failed} of {calls}",
                f"{o.acknowledged}",
                f"{o.lost}",
                mark(o.lost == 0 and o.back_s is not None),
            )
        )
    print_table(
        "kill -9, one victim at a time (kill at +1 s; figures from the kill)",
        ("killed", "read p50 before", "API answers", "restarted", "last failure", "failed calls",
         "writes acked", "lost", "verdict"),
        rows,
    )  # fmt: skip
    for o in outages:
        if o.failed:
            reasons = ", ".join(f"{why} x{n}" for why, n in o.failed.most_common())
            print(f"  {o.victim} failures: {reasons}")
    print(
        "  API answers: kill -> first success of a call sent after it that needs the victim\n"
        "    (links, gateway: GET /v1/links; users: POST /v1/sessions; social_graph: GET\n"
        "    /v1/following; news: GET /v1/news; link_checker: its own /readyz, as no API call\n"
        "    waits for it). restarted: the supervisor's 'is back, N s after it died'.\n"
        "  lost: writes answered 201 that GET /v1/links does not list afterwards"
    )


# --- part 4: balancing ---------------------------------------------------------------------------


class Cluster:
    """The services of part 4 as separate ``serve`` processes, three links replicas among
    them: ``up --processes`` gives every replica the same environment, and one must differ."""

    LINKS = ("links-1", "links-2", "links-3")

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        names = [*(n for n in NAMES if n != "links"), *self.LINKS]
        base = free_ports(len(names))
        self.ports = {name: base + i for i, name in enumerate(names)}
        self.workdir = workdir
        self.routes = workdir / "routes.yaml"
        tokens = {service: secrets.token_urlsafe(24) for service in NAMES}
        self.admin = secrets.token_urlsafe(24)
        tokens["admin"] = self.admin
        self.env = {
            **env,
            "DELINKCIOUS_DATA_DIR": str(workdir / "data"),
            "DELINKCIOUS_INTERNAL_TOKENS": ",".join(f"{n}={t}" for n, t in tokens.items()),
            "DELINKCIOUS_SECRET_KEY": secrets.token_urlsafe(32),
            "DELINKCIOUS_ROUTES_FILE": str(self.routes),
            "DELINKCIOUS_FAULTS": "",
            **{
                f"DELINKCIOUS_{service.upper()}_URL": self.url(
                    "links-1" if service == "links" else service
                )
                for service in NAMES
                if service != "gateway"
            },
        }
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def url(self, name: str) -> str:
        return f"http://{HOST}:{self.ports[name]}"

    @property
    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin}"}

    def table(self, balance: str) -> dict[str, Any]:
        return {
            "balance": balance,
            "routes": {"links": {"stable": [self.url(n) for n in self.LINKS]}},
        }

    def start(self, names: Sequence[str], faults: Mapping[str, str] | None = None) -> None:
        """Start these processes (pinned), then wait until each answers ``/healthz``."""
        for name in names:
            service = name.split("-")[0]
            env = {**self.env, "DELINKCIOUS_FAULTS": (faults or {}).get(name, "")}
            command = [
                *SERVER_PIN, sys.executable, str(BIN), "serve", service,
                "--host", HOST, "--port", str(self.ports[name]),
            ]  # fmt: skip
            self.processes[name] = spawn(command, self.workdir / f"{name}.log", env)
        deadline = time.monotonic() + 90
        with local_client() as client:
            for name in names:
                while True:
                    with contextlib.suppress(httpx.TransportError):
                        if client.get(f"{self.url(name)}/healthz", timeout=1).status_code == 200:
                            break
                    if self.processes[name].poll() is not None or time.monotonic() > deadline:
                        log = (self.workdir / f"{name}.log").read_text(errors="replace")
                        raise BenchmarkError(f"{name} did not start:\n{log[-3000:]}")
                    time.sleep(0.05)

    def stop(self, names: Sequence[str] | None = None) -> None:
        """SIGTERM (they drain), SIGKILL whatever is still running 20 s later."""
        chosen = list(self.processes) if names is None else list(names)
        for name in chosen:
            if self.processes[name].poll() is None:
                self.processes[name].send_signal(signal.SIGTERM)
        for name in chosen:
            process = self.processes.pop(name)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@dataclass
class Balanced:
    """One balance mode at one load: its wrk rounds, and the get_links each replica served."""

    setup: str
    connections: int
    balance: str
    rounds: list[WrkResult] = field(default_factory=list)
    served: Counter[str] = field(default_factory=Counter)

    def median(self, figure: Callable[[WrkResult], float]) -> float:
        return statistics.median(figure(r) for r in self.rounds)


def get_links_served(url: str) -> float:
    """``delinkcious_requests_total{method="get_links"}`` of one links replica, all outcomes."""
    with local_client(url) as client:
        text = client.get("/metrics").raise_for_status().text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "delinkcious_requests_total"
        and sample.labels.get("method") == "get_links"
    )


def part_balance(args: argparse.Namespace, wrk: str, workdir: Path, env: dict[str, str]) -> None:
    """Three links replicas, one slowed by 50 ms, then all fast: each balance mode, wrk.

    At ``--connections`` (16) the one CPU of the services is saturated, and a replica that
    sleeps costs no CPU: both modes then serve what the CPU can. At LB_LOW_CONNECTIONS the
    CPU has room, and where a call waits is what the mode decides.
    """
    loads = (args.connections, LB_LOW_CONNECTIONS)
    print(
        f"\n=== 4. least_outstanding vs round_robin: 3 links replicas, wrk -t{args.threads} "
        f"-c{' and -c'.join(map(str, loads))}, {args.seconds} s per mode ==="
    )
    print(
        "  the services started one by one with `serve` (pinned like up --processes), routes in\n"
        "  a file of their own; per replica: the rise of its\n"
        '  delinkcious_requests_total{method="get_links"} over each measured run;\n'
        f"  {WARMUP_S} s of wrk before each"
    )
    workdir.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(workdir, env)
    write_atomically(cluster.routes, yaml.safe_dump(cluster.table(BALANCES[0]), sort_keys=False))
    slow = Cluster.LINKS[0]
    results: list[Balanced] = []
    try:
        started = time.monotonic()
        cluster.start(["users", "social_graph", "news", "link_checker", *Cluster.LINKS[1:]])
        cluster.start([slow], {slow: SLOW_FAULT})
        cluster.start(["gateway"])
        gateway = cluster.url("gateway")
        print(
            f"{len(cluster.processes)} serve processes up in {time.monotonic() - started:.1f} s; "
            f"{slow} with DELINKCIOUS_FAULTS={SLOW_FAULT}"
        )
        token = lb_user(gateway)
        lua = write_lua(workdir / "auth.lua", token)
        for setup in (f"{slow} 50 ms slower", "all three as fast"):
            if setup.startswith("all"):
                cluster.stop([slow])
                cluster.start([slow])
                time.sleep(SETTLE_S)  # its start-up CPU is not the next run's
            for connections in loads:
                wrk_args = argparse.Namespace(threads=args.threads, connections=connections)
                modes = compare_modes(cluster, wrk, lua, wrk_args, args.seconds)
                for balance in BALANCES:
                    results.append(Balanced(setup, connections, balance, *modes[balance]))
                lo, rr = results[-2:]
                print(
                    f"  {setup}, -c{connections}: least_outstanding "
                    f"{lo.median(lambda r: r.requests_per_s):.0f} req/s, round_robin "
                    f"{rr.median(lambda r: r.requests_per_s):.0f} req/s (medians)",
                    flush=True,
                )
    finally:
        cluster.stop()
    print_balance(results)


def lb_user(gateway: str) -> str:
    """A user with LB_LINKS links, all checked already (no background work in the runs)."""
    with local_client(gateway) as client:
        account = {"username": "lb", "email": "lb@example.com", "password": PASSWORD}
        expect(client.post("/v1/users", json=account), 201)
        login = {"username": "lb", "password": PASSWORD}
        token = str(expect(client.post("/v1/sessions", json=login), 201).json()["access_token"])
        for i in range(LB_LINKS):
            body = {"url": f"{DEAD_TARGET}/lb/{i}", "title": f"Balanced {i}", "tags": ["lb"]}
            expect(client.post("/v1/links", json=body, headers={"Access-Token": token}), 201)
    wait_checked(gateway, token)
    return token


def compare_modes(
    cluster: Cluster, wrk: str, lua: Path, wrk_args: argparse.Namespace, seconds: int
) -> dict[str, tuple[list[WrkResult], Counter[str]]]:
    """``seconds`` per mode as rounds of ROUND_S, the modes taking turns (ABBA): this
    machine's drift lands on both alike. Each mode's rounds, and what each replica served."""
    gateway = cluster.url("gateway")
    target = f"{gateway}/v1/links?limit=10"
    put_balance(cluster, BALANCES[0])
    run_wrk(wrk, target, lua, wrk_args, WARMUP_S)
    measured: dict[str, tuple[list[WrkResult], Counter[str]]] = {
        balance: ([], Counter()) for balance in BALANCES
    }
    for n in range(max(1, seconds // ROUND_S)):
        for balance in BALANCES if n % 2 == 0 else BALANCES[::-1]:
            put_balance(cluster, balance)
            before = {name: get_links_served(cluster.url(name)) for name in Cluster.LINKS}
            rounds, served = measured[balance]
            rounds.append(parse_wrk(run_wrk(wrk, target, lua, wrk_args, ROUND_S)))
            for name in Cluster.LINKS:
                served[name] += int(get_links_served(cluster.url(name)) - before[name])
    return measured


def put_balance(cluster: Cluster, balance: str) -> None:
    """Write the table with ``balance``; wait until the gateway has it, all replicas ready."""
    write_atomically(cluster.routes, yaml.safe_dump(cluster.table(balance), sort_keys=False))
    wait_admin(
        cluster.url("gateway"),
        cluster.admin_headers,
        lambda s: s["balance"] == balance and all_healthy(s),
        f"balance {balance} with three healthy replicas",
    )


def print_balance(results: Sequence[Balanced]) -> None:
    def rps(r: WrkResult) -> float:
        return r.requests_per_s

    rows = []
    for b in results:
        total = sum(b.served.values()) or 1
        shares = " / ".join(
            f"{b.served[n]} ({b.served[n] / total * 100:.0f} %)" for n in Cluster.LINKS
        )
        low, high = min(map(rps, b.rounds)), max(map(rps, b.rounds))
        rows.append(
            (b.setup, f"-c{b.connections}", b.balance, f"{b.median(rps):.0f}",
             f"{low:.0f}-{high:.0f}", f"{b.median(lambda r: r.p50_ms):.1f}",
             f"{b.median(lambda r: r.p99_ms):.1f}",
             str(sum(r.non_2xx + r.socket_errors for r in b.rounds)), shares)
        )  # fmt: skip
    print_table(
        f"GET /v1/links?limit=10 through the gateway: medians of {len(results[0].rounds)} "
        f"rounds of {ROUND_S} s per mode",
        ("replicas", "wrk", "balance", "req/s", "range", "p50 ms", "p99 ms", "errors",
         "get_links served by links-1 / links-2 / links-3"),
        rows,
    )  # fmt: skip
    for lo, rr in zip(results[::2], results[1::2], strict=True):
        gain = (lo.median(rps) - rr.median(rps)) / rr.median(rps) * 100
        winner = BALANCES[0] if gain >= 0 else BALANCES[1]
        print(
            f"  {lo.setup}, -c{lo.connections}: {winner} serves {abs(gain):.1f} % more "
            f"({lo.median(rps):.0f} vs {rr.median(rps):.0f} req/s); p50 "
            f"{lo.median(lambda r: r.p50_ms):.1f} vs {rr.median(lambda r: r.p50_ms):.1f} ms, "
            f"p99 {lo.median(lambda r: r.p99_ms):.1f} vs {rr.median(lambda r: r.p99_ms):.1f} ms "
            "(least_outstanding vs round_robin)"
        )
    print(
        "  a sleeping replica costs no CPU: where the services' one CPU is saturated, both\n"
        "  modes serve what it can; rounds of one mode spread over this machine's drift, which\n"
        "  the range column shows (differences inside it are noise, not a winner)"
    )


# --- main -----------------------------------------------------------------------------------------


def benchmark(args: argparse.Namespace, wrk: str, workdir: Path) -> None:
    """Parts 1-3 on one ``up --processes``, part 4 on processes of its own; backends dropped."""
    suffix = f"{os.getpid()}_{secrets.token_hex(3)}"
    env = isolated_env(suffix, HOST)
    try:
        with shaped_system(workdir / "shaped", env) as shaped:
            users = timed("part 1", lambda: part_canary(shaped, args))
            timed("part 2", lambda: part_changes(shaped, users, args, wrk))
            timed("part 3", lambda: part_kills(shaped, users))
    finally:
        asyncio.run(drop_backends(suffix, env))
        print(f"dropped databases, NATS stream and Redis keys of run {suffix}")
    suffix = f"{os.getpid()}_{secrets.token_hex(3)}"
    env = isolated_env(suffix, HOST)
    try:
        timed("part 4", lambda: part_balance(args, wrk, workdir / "balance", env))
    finally:
        asyncio.run(drop_backends(suffix, env))
        print(f"dropped databases, NATS stream and Redis keys of run {suffix}")


def timed(name: str, body: Callable[[], T]) -> T:
    """Run one part and say how long it took (a long part is where a run's time went)."""
    started = time.monotonic()
    try:
        return body()
    finally:
        print(f"({name} took {time.monotonic() - started:.0f} s)")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=1000, help="users of part 1 (1000)")
    parser.add_argument(
        "--requests-per-user", type=int, default=10, help="GET /v1/links per user (10)"
    )
    parser.add_argument("--seconds", type=int, default=15, help="wrk per balance mode (15)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (16)")
    args = parser.parse_args(argv)
    if args.users < READERS or args.requests_per_user < 1:
        parser.error(f"--users must be at least {READERS}, --requests-per-user at least 1")
    if args.seconds < 1 or args.threads < 1 or args.connections < args.threads:
        parser.error("--seconds, --threads >= 1; --connections at least --threads")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wrk = require_wrk()
    stop_cleanly_on_signals()
    cpus = os.cpu_count() or 1
    if WRK_PIN:  # this script's clients stay off the services' CPU
        os.sched_setaffinity(0, range(1, cpus))
    where = "services on CPU 0, wrk and this script on the others" if WRK_PIN else "unpinned"
    print(
        f"delinkcious traffic benchmark: Python {platform.python_version()}, {cpus} CPUs, "
        f"{platform.system()} {platform.machine()}; {where}"
    )
    started = time.monotonic()
    code = in_scratch_dir("traffic", lambda workdir: benchmark(args, wrk, workdir))
    print(f"total {time.monotonic() - started:.0f} s")
    return code


if __name__ == "__main__":
    sys.exit(main())
