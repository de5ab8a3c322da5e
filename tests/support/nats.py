"""A private nats-server for tests that stop, restart or starve their broker.

Never the shared one on 4222: each instance has its own free port and store directory.
"""

from __future__ import annotations

import asyncio
import ctypes
import signal
import socket
import subprocess
from pathlib import Path

NATS_SERVER = "/usr/sbin/nats-server"


def _die_with_parent() -> None:
    """Stop the server if pytest is killed (a CI timeout) before its fixture can."""
    pr_set_pdeathsig = 1
    ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGTERM)


class NatsServer:
    """One nats-server process with JetStream on a free port and its own store directory."""

    def __init__(self, directory: Path) -> None:
        self.store = directory / "store"
        self.log = directory / "nats-server.log"
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"nats://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(
                [
                    NATS_SERVER,
                    "-a",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-js",
                    "-sd",
                    str(self.store),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )

    async def ready(self, within: float = 10.0) -> None:
        async with asyncio.timeout(within):
            while True:
                assert self._process is not None and self._process.poll() is None, (
                    self.log.read_text()
                )
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                except OSError:
                    await asyncio.sleep(0.05)
                    continue
                writer.close()
                await writer.wait_closed()
                return

    def stop(self) -> None:
        """A graceful stop (SIGTERM), as in a rolling restart: the store is flushed."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            self._process.wait(timeout=10)
        self._process = None
