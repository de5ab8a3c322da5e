"""The route table file, read at start and again whenever its content changes.

Polled rather than watched: a Kubernetes ConfigMap volume replaces its files by swapping
a symlink, which inotify watches of the file itself miss. A table that does not parse is
refused with one log line and the one in force stays; the same bad content is not
reported twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Mapping
from pathlib import Path

import yaml

from delinkcious.platform.routing.router import Router
from delinkcious.platform.routing.table import RouteTable, RouteTableError, parse_table

log = logging.getLogger("delinkcious.routing")


class RouteFile:
    def __init__(self, path: Path, methods: Mapping[str, frozenset[str]]) -> None:
        self.path = path
        self._methods = methods
        self._seen: bytes | None = None  # digest of the content last read, good or bad
        self.error: str | None = None  # why the newest content was refused, if it was

    def load(self) -> RouteTable:
        """The table in the file now; RouteTableError (with the reason) if unusable."""
        content = self._read()
        self._seen = hashlib.sha256(content).digest()
        return self._parse(content)

    def _read(self) -> bytes:
        try:
            return self.path.read_bytes()
        except OSError as exc:
            raise RouteTableError(f"cannot read {self.path}: {exc.strerror}") from None

    def _parse(self, content: bytes) -> RouteTable:
        try:
            data = yaml.safe_load(content)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            raise RouteTableError(f"not YAML{where}") from None
        return parse_table(data, self._methods)

    def check(self, router: Router) -> None:
        """Put a changed table in force; refuse (and keep the old one) if it is unusable."""
        problem: RouteTableError | None = None
        try:
            content = self._read()
        except RouteTableError as exc:  # gone or unreadable: said once, like bad content
            content, problem = str(exc).encode(), exc
        digest = hashlib.sha256(content).digest()
        if digest == self._seen:
            return
        self._seen = digest
        try:
            if problem is not None:
                raise problem
            table = self._parse(content)
        except RouteTableError as exc:
            self.error = str(exc)
            log.error("route table %s refused, the previous one stays in force: %s", self.path, exc)
            return
        router.replace(table)
        self.error = None
        log.info("route table %s reloaded", self.path)

    async def watch(self, router: Router, interval: float = 0.5) -> None:
        while True:
            await asyncio.sleep(interval)
            self.check(router)
