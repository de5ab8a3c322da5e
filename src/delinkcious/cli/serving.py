"""Serving an app built by the wiring: bind first, start, say where, stop cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import socket
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager

import click
import uvicorn
from fastapi import FastAPI

# How long SIGTERM waits for requests in flight before closing their connections.
DRAIN_SECONDS = 10


class _Server(uvicorn.Server):
    """uvicorn's server, minus re-raising the stop signal after a graceful shutdown.

    uvicorn re-raises SIGINT/SIGTERM once it has stopped, which would kill the process
    before the wiring closes its databases; here a signal only asks for a clean stop
    (uvicorn stops accepting, lets requests in flight finish, then returns).
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


def listen(host: str, port: int) -> socket.socket:
    """Bind before anything else starts, so a taken port is a one-line error, not a trace."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: plain asyncio sets TCP_NODELAY only then (else each response
    # waits ~40 ms for a delayed ACK; uvloop hides it, asyncio does not).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def server_config(app: FastAPI) -> uvicorn.Config:
    """How every Delinkcious process has uvicorn serve its app."""
    return uvicorn.Config(
        app,
        log_level="warning",
        log_config=None,  # uvicorn's lines go through our logging setup, as JSON
        access_log=False,
        lifespan="off",
        server_header=False,
        timeout_graceful_shutdown=DRAIN_SECONDS,
    )


async def serve(
    app_context: AbstractAsyncContextManager[FastAPI],
    sock: socket.socket,
    on_ready: Callable[[str], None],
) -> None:
    """Build the app, serve it on ``sock`` until SIGINT/SIGTERM, then close everything."""
    async with app_context as app:
        server = _Server(server_config(app))
        # Everything built so far lives as long as the process: keep it out of the
        # collector's scans, so a full collection under load takes ms, not a 300 ms stall.
        gc.freeze()
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        # uvicorn exposes readiness only as a flag, so poll it briefly.
        while not server.started and not serving.done():  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        if server.started:
            on_ready(url_of(sock))
        await serving


def run(coroutine: object) -> None:
    try:
        import uvloop
    except ImportError:  # uvloop is optional (not on Windows): plain asyncio works too
        asyncio.run(coroutine)  # type: ignore[arg-type]
    else:
        uvloop.run(coroutine)  # type: ignore[arg-type]
