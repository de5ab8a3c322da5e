"""The local cluster a rollout drives: the files of ``up --processes`` and its processes.

Starting or stopping a process is an edit of ``processes.yaml`` (the supervisor follows
within half a second); moving traffic is an edit of ``routes.yaml`` (every process
follows within half a second), confirmed at the gateway's ``/admin/routes`` before the
rollout goes on — so a switch is in force everywhere when the controller says so.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import yaml

from delinkcious.cli.processes import ADMIN_TOKEN_FILE, ROUTES_FILE
from delinkcious.local import processes as local
from delinkcious.rollout.state import Release


class ClusterError(RuntimeError):
    """The local cluster is not there or does not do what was asked in time."""


class LocalCluster:
    def __init__(self, data_dir: Path, http: httpx.AsyncClient, timeout: float = 90.0) -> None:
        self.data_dir = data_dir
        self.http = http
        self.timeout = timeout
        listing = data_dir / local.FILE
        if not listing.exists():
            raise ClusterError(
                f"no {listing}: start `delinkcious up --processes --data-dir {data_dir}` first"
            )
        self.listing = listing
        self.host = local.read_all(listing).host

    # -- what runs ------------------------------------------------------------------------

    def processes(self) -> list[local.Process]:
        return local.read(self.listing)

    def url(self, name: str) -> str:
        process = next(p for p in self.processes() if p.name == name)
        return f"http://{self.host}:{process.port}"

    @property
    def gateway(self) -> str:
        return self.url("gateway")

    def prometheus(self) -> str | None:
        path = self.data_dir / "prometheus" / "url"
        return path.read_text().strip() if path.exists() else None

    def start(self, service: str, release: Release, names: Sequence[str]) -> None:
        """Add processes running ``release`` (the supervisor starts them)."""
        current = self.processes()
        taken = {p.port for p in current}
        fresh = []
        for name in names:
            if any(p.name == name for p in current):
                continue  # already asked for (a resumed rollout)
            port = self._free_port(taken)
            taken.add(port)
            fresh.append(
                local.Process(
                    name=name,
                    service=service,
                    port=port,
                    version=release.version,
                    command=release.command,
                    env=release.env,
                )
            )
        if fresh:
            local.write(self.listing, [*current, *fresh], self.host)

    def stop(self, names: Sequence[str]) -> None:
        kept = [p for p in self.processes() if p.name not in set(names)]
        local.write(self.listing, kept, self.host)

    def _free_port(self, taken: set[int]) -> int:
        port = max(taken) + 1
        while port in taken or not _bindable(self.host, port):
            port += 1
        return port

    async def ready(self, names: Sequence[str], version: str) -> None:
        """Until each process answers ready, announcing ``version``."""
        for name in names:
            url = self.url(name)

            async def answers(url: str = url) -> bool:
                try:
                    ready = await self.http.get(f"{url}/readyz?scope=local", timeout=2)
                    build = await self.http.get(f"{url}/version", timeout=2)
                except httpx.HTTPError:
                    return False
                return ready.status_code == 200 and build.json().get("version") == version

            await self._until(answers, f"{name} ready with version {version}")

    # -- where traffic goes ------------------------------------------------------------------

    def route(self, service: str) -> dict[str, Any]:
        table = yaml.safe_load((self.data_dir / ROUTES_FILE).read_text()) or {}
        route: dict[str, Any] = (table.get("routes") or {}).get(service) or {}
        return route

    async def set_route(
        self,
        service: str,
        stable: Sequence[str],
        canary: Sequence[str] = (),
        weight: int = 0,
        methods: Sequence[str] | None = None,
    ) -> None:
        """Write the service's route (no canary section left behind when there is none)
        and wait until the gateway has it in force."""
        path = self.data_dir / ROUTES_FILE
        table = yaml.safe_load(path.read_text()) or {}
        route: dict[str, Any] = {"stable": [self.url(name) for name in stable]}
        if canary:
            route["canary"] = [self.url(name) for name in canary]
            route["canary_weight"] = weight
            if methods:
                route["canary_methods"] = list(methods)
        table.setdefault("routes", {})[service] = route
        aside = path.with_name(f".{path.name}.{os.getpid()}")
        aside.write_text(yaml.safe_dump(table, sort_keys=False))
        aside.replace(path)
        token = (self.data_dir / ADMIN_TOKEN_FILE).read_text().strip()

        async def in_force() -> bool:
            try:
                answer = await self.http.get(
                    f"{self.gateway}/admin/routes",
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=2,
                )
                shown = answer.json()["routes"][service]
            except (httpx.HTTPError, ValueError, KeyError):
                return False
            return bool(
                [r["url"] for r in shown["stable"]] == route["stable"]
                and [r["url"] for r in shown["canary"]] == route.get("canary", [])
                and shown["canary_weight"] == route.get("canary_weight", 0)
            )

        await self._until(in_force, f"the gateway routing {service} as asked")

    async def _until(self, check: Any, what: str) -> None:
        deadline = asyncio.get_running_loop().time() + self.timeout
        while not await check():
            if asyncio.get_running_loop().time() > deadline:
                raise ClusterError(f"not {what} within {self.timeout:g} s")
            await asyncio.sleep(0.1)


def _bindable(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True
