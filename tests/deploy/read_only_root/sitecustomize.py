"""A read-only root filesystem for a local process: every write outside the directories in
READ_ONLY_ROOT_WRITABLE fails as it would on the container's read-only root (EROFS).

Loaded by site.py when this directory is on PYTHONPATH; the local cluster of the deploy
tests puts it there for each of our containers, the mounts of the pod being writable.
"""

from __future__ import annotations

import errno
import os
import sys
from typing import Any

_WRITABLE = tuple(
    os.path.realpath(path) + os.sep
    for path in os.environ.get("READ_ONLY_ROOT_WRITABLE", "").split(os.pathsep)
    if path
)
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_CHANGES = {"os.mkdir", "os.rename", "os.remove", "os.rmdir", "os.symlink", "os.truncate"}


def _refuse(path: Any) -> None:
    if isinstance(path, int):  # an open file descriptor: its opening was checked
        return
    where = os.path.realpath(os.fsdecode(path))
    if where.startswith("/dev/") or (where + os.sep).startswith(_WRITABLE):
        return
    raise OSError(errno.EROFS, "Read-only file system (simulated)", where)


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if event == "open":
        path, mode, flags = args
        if path is not None and (
            (isinstance(mode, str) and any(c in mode for c in "wax+")) or flags & _WRITE_FLAGS
        ):
            _refuse(path)
    elif event in _CHANGES:
        _refuse(args[0])


sys.addaudithook(_hook)
