"""``delinkcious up``: the whole system in one process, ready in about a second."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import uvicorn

from delinkcious import __version__
from delinkcious.platform.config import Settings
from delinkcious.wiring import embedded


class _Server(uvicorn.Server):
    """uvicorn's server, minus re-raising the stop signal after a graceful shutdown.

    uvicorn re-raises SIGINT/SIGTERM once it has stopped, which would kill the process
    before the wiring closes its databases; here a signal only asks for a clean stop.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.handle_exit, sig, None)
        try:
            yield
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)


def _listen(host: str, port: int) -> socket.socket:
    """Bind before anything else starts, so a taken port is a one-line error, not a trace."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


async def _serve_embedded(settings: Settings, sock: socket.socket) -> None:
    async with embedded(settings) as system:
        config = uvicorn.Config(
            system.app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            server_header=False,
        )
        server = _Server(config)
        # Everything built so far lives as long as the process: keep it out of the
        # collector's scans, so a full collection under load takes ms, not a 300 ms stall.
        gc.freeze()
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not serving.done():  # noqa: ASYNC110 (uvicorn has only a flag)
            await asyncio.sleep(0.01)
        if server.started:
            host, port = sock.getsockname()[:2]
            shown = f"[{host}]" if ":" in host else host
            click.echo(
                f"Delinkcious {__version__} is running at http://{shown}:{port} "
                f"(API docs at /docs, data in {settings.data_dir}). Press Ctrl-C to stop.",
            )
        await serving


@click.group()
@click.version_option(__version__, prog_name="delinkcious")
def main() -> None:
    """Delinkcious: social bookmarking as microservices."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=5000, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the SQLite files live (default ./.delinkcious, or $DELINKCIOUS_DATA_DIR).",
)
def up(host: str, port: int, data_dir: Path | None) -> None:
    """Run every service in this one process (SQLite, in-process wiring)."""
    overrides = {"data_dir": data_dir} if data_dir is not None else {}
    settings = Settings(**overrides)
    _run(_serve_embedded(settings, _listen(host, port)))
    click.echo("Delinkcious stopped.", err=True)


def _run(coroutine: object) -> None:
    try:
        import uvloop
    except ImportError:  # uvloop is optional (not on Windows): plain asyncio works too
        asyncio.run(coroutine)  # type: ignore[arg-type]
    else:
        uvloop.run(coroutine)  # type: ignore[arg-type]


if __name__ == "__main__":
    sys.exit(main())
