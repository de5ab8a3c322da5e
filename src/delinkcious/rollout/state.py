"""A service's rollouts on disk (``<data dir>/rollouts/<service>.json``): the one in
progress, where it stands, and the history — so a rollout survives a restart of the
command, and ``status``, ``history``, ``promote``, ``abort`` and ``undo`` work from any
terminal.

One controller at a time drives a service's rollout; it holds ``<service>.lock`` (its
process id). A command that finds the lock held by a live process leaves its request
(promote, abort) in the file, where that controller picks it up within half a second.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

DIRECTORY = "rollouts"


class Strategy(StrEnum):
    RECREATE = "recreate"
    ROLLING = "rolling"
    BLUE_GREEN = "blue-green"
    CANARY = "canary"


class Phase(StrEnum):
    PROGRESSING = "progressing"
    PAUSED = "paused"  # blue-green keeping blue warm; a canary waiting for promote
    SUCCEEDED = "succeeded"
    ABORTED = "aborted"  # by a person, or by a failed analysis or smoke test
    UNDONE = "undone"  # succeeded, then rolled back

    @property
    def active(self) -> bool:
        return self in (Phase.PROGRESSING, Phase.PAUSED)


class Release(BaseModel):
    """What runs: a version, and how (another install's command, drill settings)."""

    model_config = ConfigDict(frozen=True)

    version: str
    command: str | None = None
    env: dict[str, str] = Field(default_factory=dict)


class Params(BaseModel):
    replicas: int = Field(1, ge=1, le=9)
    max_surge: int = Field(1, ge=0)
    max_unavailable: int = Field(0, ge=0)
    steps: list[int] = Field(default_factory=lambda: [500, 2500, 5000, 10_000])  # basis points
    pause: float = Field(10.0, ge=0)  # seconds at each weight before the analysis
    analysis: bool = True
    window: float = Field(20.0, gt=0)  # seconds of metrics an analysis reads
    min_requests: int = Field(50, ge=1)
    deadline: float = Field(60.0, gt=0)  # an inconclusive analysis fails after this
    scale_down_delay: float = Field(30.0, ge=0)  # blue-green keeps blue warm this long
    smoke: bool = True
    canary_methods: list[str] | None = None


class Event(BaseModel):
    at: str
    what: str
    verdict: str | None = None  # pass, fail, inconclusive: an analysis's


class Rollout(BaseModel):
    id: int
    service: str
    strategy: Strategy
    phase: Phase = Phase.PROGRESSING
    source: Release  # what ran before
    target: Release
    params: Params
    old: list[str]  # the processes of the source release
    new: list[str] = Field(default_factory=list)
    step: int = 0  # where the plan stands
    weight: int = 0
    undo_of: int | None = None
    requested: str | None = None  # "promote", "promote-full" or "abort", from another command
    started: str
    ended: str | None = None
    events: list[Event] = Field(default_factory=list)

    def note(self, what: str, verdict: str | None = None) -> Event:
        event = Event(at=now(), what=what, verdict=verdict)
        self.events.append(event)
        return event


class History(BaseModel):
    rollouts: list[Rollout] = Field(default_factory=list)

    @property
    def current(self) -> Rollout | None:
        return self.rollouts[-1] if self.rollouts and self.rollouts[-1].phase.active else None


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


class Store:
    def __init__(self, data_dir: Path, service: str) -> None:
        self.directory = data_dir / DIRECTORY
        self.path = self.directory / f"{service}.json"
        self.lock = self.directory / f"{service}.lock"

    def load(self) -> History:
        if not self.path.exists():
            return History()
        return History.model_validate_json(self.path.read_text())

    def save(self, history: History) -> None:
        """Replaced at once (write aside, then rename): a reader never sees half of it."""
        self.directory.mkdir(parents=True, exist_ok=True)
        aside = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        aside.write_text(history.model_dump_json(indent=1))
        aside.replace(self.path)

    def holder(self) -> int | None:
        """The live process that drives this service's rollout, if any."""
        try:
            pid = int(self.lock.read_text())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        return pid

    @contextlib.contextmanager
    def driving(self) -> Iterator[None]:
        """Hold the lock while driving; refuse if a live process holds it."""
        self.directory.mkdir(parents=True, exist_ok=True)
        holder = self.holder()
        if holder is not None and holder != os.getpid():
            raise RuntimeError(f"process {holder} drives this rollout")
        self.lock.write_text(str(os.getpid()))
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                self.lock.unlink()
