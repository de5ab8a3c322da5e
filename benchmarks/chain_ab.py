"""The observability chain's cost in throughput, chain on and off in one server process.

``list_links.py`` compares separate processes, and on a shared two-core machine two
processes of the very same program differ by up to 15 %: more than the 10 % budget being
measured, so it needs many processes per mode and still swings from run to run. Here one
process (pinned to CPU 0) serves two complete embedded systems, each on its own port and
data directory: one with the chain (logging at INFO as JSON, metrics, tracing set up with
the ``always_off`` sampler), one without (``DELINKCIOUS_MIDDLEWARE=false``). They share the
process, its memory, its CPU and its drift; wrk (on the other CPUs) drives one at a time,
in short rounds ordered on, off, off, on, ... so that a steady drift favours neither.
It prints the cost three ways (paired rounds, median throughputs, median CPU time per
request); the verdict takes the largest.

    .venv/bin/python benchmarks/chain_ab.py [--rounds 30] [--round-seconds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path

from list_links import (
    BUDGET_CHAIN_COST,
    CHAIN,
    HOST,
    LINK_COUNT,
    PAGE_SIZES,
    SERVER_PIN,
    Server,
    cpu_seconds,
    free_port,
    in_scratch_dir,
    load_links,
    login,
    parse_wrk,
    require_wrk,
    run_wrk,
    spawn,
    stop,
    wait_checked,
    wait_healthy,
    write_lua,
)

MODES = ("on", "off")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=30, help="rounds per mode and page size")
    parser.add_argument("--round-seconds", type=int, default=3, help="seconds per round")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)  # the server side
    parser.add_argument("--ports", type=int, nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rounds < 2:
        parser.error("--rounds must be at least 2 (the quartiles need two pairs)")
    if args.round_seconds < 1 or args.threads < 1 or args.connections < args.threads:
        parser.error("--round-seconds and --threads must be at least 1, --connections >= --threads")
    return args


# --- the server process -------------------------------------------------------------------


async def serve_both(data_dir: Path, ports: list[int]) -> None:
    """Both systems on their ports until SIGINT; logs and tracing set up as ``up`` does."""
    import uvicorn

    from delinkcious.cli.main import load_settings, observe
    from delinkcious.cli.serving import listen, server_config
    from delinkcious.embedded import embedded_app
    from delinkcious.platform.tracing import shutdown_tracing

    settings = {
        mode: load_settings(data_dir=data_dir / mode, middleware=mode == "on") for mode in MODES
    }
    observe("delinkcious", settings["on"], "embedded")

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:  # ours stop both servers at once
            yield

    servers: list[uvicorn.Server] = []

    def stop_all() -> None:
        for server in servers:
            server.should_exit = True

    async with AsyncExitStack() as stack:
        for mode in MODES:
            app = await stack.enter_async_context(embedded_app(settings[mode]))
            servers.append(Server(server_config(app)))  # as ``delinkcious up`` serves
        gc.freeze()  # as ``delinkcious up`` does
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop_all)
        sockets = [listen(HOST, port) for port in ports]
        await asyncio.gather(
            *(server.serve(sockets=[sock]) for server, sock in zip(servers, sockets, strict=True))
        )
    shutdown_tracing()


# --- the driver ---------------------------------------------------------------------------


def start(workdir: Path) -> tuple[subprocess.Popen[bytes], dict[str, Server]]:
    """The two-system server process, pinned, with the chain-on environment."""
    ports = [free_port(), free_port()]
    log = workdir / "server.log"
    command = [
        *SERVER_PIN, sys.executable, __file__, "--serve", str(workdir / "data"),
        "--ports", *map(str, ports),
    ]  # fmt: skip
    started = time.perf_counter()
    process = spawn(command, log, CHAIN["on"])
    servers = {mode: Server(process, port, log) for mode, port in zip(MODES, ports, strict=True)}
    for server in servers.values():
        wait_healthy(server, started)
    return process, servers


def measure(args: argparse.Namespace, wrk: str, workdir: Path) -> None:
    process, servers = start(workdir)
    try:
        lua = {}
        for mode, server in servers.items():
            token = login(server.url)
            asyncio.run(load_links(server.url, token, LINK_COUNT))
            wait_checked(server.url, token)
            lua[mode] = write_lua(workdir / f"{mode}.lua", token)
        print(
            f"=== chain on vs off in one process: {args.rounds} rounds of "
            f"{args.round_seconds} s each, order on off off on ... ==="
        )
        for limit in PAGE_SIZES:
            urls = {mode: f"{servers[mode].url}/v1/links?limit={limit}" for mode in MODES}
            for mode in MODES:
                run_wrk(wrk, urls[mode], lua[mode], args, 2)  # warm up
            rps: dict[str, list[float]] = {mode: [] for mode in MODES}
            cpu_us: dict[str, list[float]] = {mode: [] for mode in MODES}
            for number in range(args.rounds):
                order = MODES if number % 2 == 0 else MODES[::-1]
                for mode in order:
                    before = cpu_seconds(process.pid)
                    result = parse_wrk(
                        run_wrk(wrk, urls[mode], lua[mode], args, args.round_seconds)
                    )
                    rps[mode].append(result.requests_per_s)
                    spent = cpu_seconds(process.pid) - before
                    cpu_us[mode].append(spent / max(result.requests, 1) * 1e6)
            report(limit, rps, cpu_us)
    finally:
        stop(servers["on"])


def report(limit: int, rps: dict[str, list[float]], cpu_us: dict[str, list[float]]) -> None:
    """Three estimates of one cost: the median of the paired rounds' costs (with its
    quartiles), the cost between the modes' median throughputs, and between their median
    CPU times per request. The server is CPU-bound, so the three agree up to noise."""
    pairs = [1 - on / off for on, off in zip(rps["on"], rps["off"], strict=True)]
    paired = statistics.median(pairs)
    low, _, high = statistics.quantiles(pairs, n=4)
    on_rps, off_rps = statistics.median(rps["on"]), statistics.median(rps["off"])
    on_cpu, off_cpu = statistics.median(cpu_us["on"]), statistics.median(cpu_us["off"])
    by_cpu = (on_cpu - off_cpu) / on_cpu
    worst = max(paired, 1 - on_rps / off_rps, by_cpu)
    mark = "ok" if worst <= BUDGET_CHAIN_COST else "over"
    print(
        f"  limit={limit:<4} on {on_rps:8.1f} req/s   off {off_rps:8.1f} req/s   "
        f"cost {(1 - on_rps / off_rps) * 100:5.1f} %   (budget <= "
        f"{BUDGET_CHAIN_COST * 100:.0f} %; the largest of the three estimates) {mark}"
    )
    print(
        f"             paired rounds: cost {paired * 100:.1f} % (median of {len(pairs)}; "
        f"quartiles {low * 100:.1f}, {high * 100:.1f} %)"
    )
    print(
        f"             CPU per request: on {on_cpu:.0f} µs, off {off_cpu:.0f} µs "
        f"(the chain: {on_cpu - off_cpu:.0f} µs, {by_cpu * 100:.1f} %)"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve is not None:
        from delinkcious.cli.serving import run

        run(serve_both(args.serve, args.ports))
        return 0
    wrk = require_wrk()
    return in_scratch_dir("ab", lambda workdir: measure(args, wrk, workdir))


if __name__ == "__main__":
    sys.exit(main())
