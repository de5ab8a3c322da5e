"""``processes.yaml``: which processes `up --processes` keeps running (no secrets in it).

The supervisor makes the running processes match it twice a second: a new entry is
started, a removed one stopped, a changed one replaced. `up --processes` writes it at
start; `delinkcious rollout` edits it to start a new version beside the current one::

    processes:
    - {name: gateway, service: gateway, port: 5000}
    - {name: links, service: links, port: 5001}
    - name: links-v2-1
      service: links
      port: 5008
      version: 0.2.0                      # announced instead of the package's
      command: /opt/other/bin/delinkcious  # another install of Delinkcious, if any
      env: {DELINKCIOUS_FAULTS: "links.get_links:error=0.2"}   # for drills
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from delinkcious.platform.supervisor import ProcessSpec
from delinkcious.registry import NAMES

FILE = "processes.yaml"


class Process(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,40}$")
    service: str
    port: int = Field(ge=1, le=65535)
    version: str | None = None
    command: str | None = None
    env: Mapping[str, str] = Field(default_factory=dict)

    @field_validator("service")
    @classmethod
    def _known(cls, service: str) -> str:
        if service not in NAMES:
            raise ValueError(f"no service {service!r} (one of {', '.join(NAMES)})")
        return service


class Processes(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"  # where every process listens
    processes: list[Process]


class ProcessesError(ValueError):
    """The file cannot be used; the message says why."""


def read(path: Path) -> list[Process]:
    return read_all(path).processes


def read_all(path: Path) -> Processes:
    try:
        data = yaml.safe_load(path.read_text())
        listing = Processes.model_validate(data)
    except (OSError, yaml.YAMLError) as exc:
        raise ProcessesError(f"cannot read {path}: {exc}") from None
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ProcessesError(f"{path}: {where}: {first['msg']}") from None
    processes = listing.processes
    names = [process.name for process in processes]
    if len(set(names)) != len(names) or len({p.port for p in processes}) != len(processes):
        raise ProcessesError(f"{path}: names and ports must be unique")
    return listing


def write(path: Path, processes: Sequence[Process], host: str, header: str = "") -> None:
    """Replace the file at once (write aside, then rename): a reader sees old or new."""
    data = {
        "host": host,
        "processes": [p.model_dump(exclude_defaults=True) for p in processes],
    }
    aside = path.with_name(f".{path.name}.{os.getpid()}")
    aside.write_text(header + yaml.safe_dump(data, sort_keys=False))
    aside.replace(path)


def spec(process: Process, host: str, env: Mapping[str, str]) -> ProcessSpec:
    """How the supervisor runs one entry: ``serve`` of this install, or of another."""
    program = (
        [process.command] if process.command else [sys.executable, "-m", "delinkcious.cli.main"]
    )
    extra = dict(process.env)
    if process.version is not None:
        extra["DELINKCIOUS_VERSION"] = process.version
    return ProcessSpec(
        name=process.name,
        argv=[*program, "serve", process.service, "--host", host, "--port", str(process.port)],
        env={**env, **extra} if extra else env,
        ready_url=f"http://{host}:{process.port}/healthz",
    )
