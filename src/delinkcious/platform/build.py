"""What this process is: the release it runs and the revision it was built from.

The version is ``DELINKCIOUS_VERSION`` or the installed package's; the revision is
``DELINKCIOUS_REVISION`` (the image sets it from its build argument) or, when the code runs
from a git checkout, that checkout's commit (``+dirty`` with uncommitted changes), else
``unknown``. Both are on ``/version``, on ``delinkcious_build_info`` and on every log line
and request series.
"""

from __future__ import annotations

import functools
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Build:
    service: str
    version: str
    revision: str

    def as_json(self) -> dict[str, str]:
        return {"service": self.service, "version": self.version, "revision": self.revision}


def build_of(service: str, version: str, revision: str | None) -> Build:
    return Build(service, version, revision or checkout_revision())


@functools.cache
def checkout_revision() -> str:
    """The commit of the git checkout this package runs from, if it runs from one."""
    try:
        head = _git("rev-parse", "--short=12", "HEAD")
        dirty = _git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}+dirty" if dirty else head or "unknown"


def _git(*args: str) -> str:
    here = Path(__file__).resolve().parent
    done = subprocess.run(
        ["git", "-C", str(here), *args], capture_output=True, text=True, timeout=5, check=True
    )
    return done.stdout.strip()
