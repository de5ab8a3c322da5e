"""What the observability chain costs ``GET /v1/links``, in instructions counted by callgrind.

``list_links.py`` measures the chain's cost in requests per second, and on a shared
two-core machine those figures swing: the machine's speed drifts from minute to minute,
and two processes of the same program differ by up to 15 %. Instructions do not swing:
valgrind's callgrind counts every instruction the server executes, the same total for the
same program and inputs whatever else the machine is doing. So this runs the server under
callgrind, chain on and chain off (the same settings as ``list_links.py``), and counts the
instructions of a fixed number of requests to each page size, sent ``--concurrency`` at a
time as under load (the access log writes its lines once per event-loop turn).

    .venv/bin/python benchmarks/chain_instructions.py [--requests 1500] [--links 120]

Instructions are not time (a cache miss costs more than an addition), so this is the
second figure, not the budget: the budget is on requests per second. Under valgrind the
server runs about fifty times slower; both modes run at once, about five minutes in all.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from list_links import (
    BUDGET_CHAIN_COST,
    CHAIN,
    PAGE_SIZES,
    BenchmarkError,
    in_scratch_dir,
    load_links,
    login,
    running_server,
    wait_checked,
)

STARTUP_TIMEOUT_SECONDS = 600.0  # imports and argon2 are slow under valgrind
WARMUP_REQUESTS = 50


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1500, help="requests per page size")
    parser.add_argument("--links", type=int, default=120, help="links saved (>= 100)")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight")
    args = parser.parse_args(argv)
    if args.links < max(PAGE_SIZES):
        parser.error(f"--links must be at least {max(PAGE_SIZES)}")
    if args.requests < 1 or args.concurrency < 1:
        parser.error("--requests and --concurrency must be at least 1")
    return args


def callgrind_control(*options: str) -> None:
    subprocess.run(["callgrind_control", *options], check=True, capture_output=True, timeout=120)


async def send(url: str, token: str, count: int, concurrency: int) -> None:
    """``count`` requests to ``url``, ``concurrency`` at a time; every one must be a 200."""
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(
        headers={"Access-Token": token}, limits=limits, trust_env=False, timeout=120
    ) as client:

        async def one() -> None:
            async with gate:
                response = await client.get(url)
            if response.status_code != 200:
                raise BenchmarkError(f"GET {url}: {response.status_code}")

        await asyncio.gather(*(one() for _ in range(count)))


def totals(out: Path) -> int:
    """The instruction total of one callgrind dump."""
    for line in out.read_text().splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1])
    raise BenchmarkError(f"no totals in {out}")


def count(mode: str, workdir: Path, args: argparse.Namespace) -> dict[int, float]:
    """Instructions per request of each page size, for the server in ``mode``."""
    out = workdir / "callgrind.out"
    runner = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
    with running_server(workdir, CHAIN[mode], runner, STARTUP_TIMEOUT_SECONDS) as server:
        pid = str(server.process.pid)
        token = login(server.url)
        asyncio.run(load_links(server.url, token, args.links))
        wait_checked(server.url, token)
        per_request = {}
        for number, limit in enumerate(PAGE_SIZES, start=1):
            url = f"{server.url}/v1/links?limit={limit}"
            asyncio.run(send(url, token, WARMUP_REQUESTS, args.concurrency))
            callgrind_control("--zero", pid)
            callgrind_control("--instr=on", pid)
            asyncio.run(send(url, token, args.requests, args.concurrency))
            callgrind_control("--instr=off", pid)
            callgrind_control("--dump", pid)
            per_request[limit] = totals(Path(f"{out}.{number}")) / args.requests
        return per_request


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("error: needs valgrind (apt-get install valgrind)", file=sys.stderr)
        return 1
    started = time.perf_counter()
    counted: dict[str, dict[int, float]] = {}

    def count_both(workdir: Path) -> None:
        with ThreadPoolExecutor(max_workers=2) as pool:  # one server per CPU
            running = {mode: pool.submit(count, mode, workdir / mode, args) for mode in CHAIN}
            counted.update({mode: future.result() for mode, future in running.items()})

    if code := in_scratch_dir("callgrind", count_both):
        return code
    print(f"=== instructions per request, chain on vs off ({args.requests} requests each) ===")
    for limit in PAGE_SIZES:
        on, off = counted["on"][limit], counted["off"][limit]
        cost = (on - off) / on
        mark = "ok" if cost <= BUDGET_CHAIN_COST else "over"
        print(
            f"  limit={limit:<4} on {on:12,.0f}   off {off:12,.0f}   "
            f"the chain {on - off:9,.0f} ({cost * 100:4.1f} % of the request's) {mark}"
        )
    print(f"({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
