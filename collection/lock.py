"""One writer per output folder: an advisory lock file that names its holder.

``rainbench ingest``, ``run`` and ``derain`` each write a folder of their own (``--out``). Two of
them writing the same folder at once corrupt each other's files (half-written Arrow shards) or do
the same work twice, so each holds :func:`output_lock` on its folder for as long as it writes::

    OUT/.rainbench.lock    {"pid": ..., "host": ..., "command": ..., "started": ...}

The lock is ``fcntl.flock`` on that file, so the kernel releases it when its holder exits, even by
``kill -9``: a stale file left behind by a killed process never blocks the next run. A second
writer fails at once with :class:`OutputLockedError`, one line naming the folder and the holder
(pid, host, command, start time). The file is removed when the lock is released. Where ``fcntl``
is missing (Windows), no lock is taken.

The lock is per open file, not per process: one process taking the lock of a folder it already
holds fails the same way, which is what a nested writer into one folder deserves. A forked child
(ingest's probe workers) would share the open file and keep the lock alive after its parent is
killed, so every child closes its copies of the held lock files as soon as it starts.
"""

from __future__ import annotations

import errno
import functools
import inspect
import json
import logging
import os
import shlex
import socket
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

LOCK_NAME = ".rainbench.lock"
"""The lock file's name inside the output folder."""

F = TypeVar("F", bound=Callable[..., Any])

_HELD: set[int] = set()
"""File descriptors of the locks this process holds (closed in forked children)."""


def _close_inherited() -> None:
    # Closing a child's copy never unlocks the parent: flock is released with the last copy.
    for fd in list(_HELD):
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_inherited)


class OutputLockedError(RuntimeError):
    """Another process is writing the output folder; the message names the folder and that process."""

    def __init__(self, folder: Path, holder: dict[str, Any]):
        self.folder, self.holder = folder, holder
        super().__init__(f"{folder} is being written by another process ({describe_holder(holder)}); "
                         "wait for it to finish or choose another output folder")


def describe_holder(holder: dict[str, Any]) -> str:
    """``pid 123 on host h, `rainbench run ...`, since 2026-12-02 10:00:00`` from a lock file's content."""
    if not holder:
        return "it has not written its name yet"
    pid, host = holder.get("pid"), holder.get("host")
    text = f"pid {pid} on {host}"
    if host == socket.gethostname() and isinstance(pid, int) and not _alive(pid):
        # flock is held, yet the named process is gone: a child it forked still has the file open.
        text += " (exited; a process it started still holds the lock)"
    if holder.get("command"):
        text += f", `{holder['command']}`"
    if holder.get("started"):
        text += f", since {holder['started']}"
    return text


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_holder(path: Path) -> dict[str, Any]:
    # The holder writes its name right after it takes the lock: give it a moment before saying "unknown".
    for _ in range(20):
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            text = ""
        if text.strip():
            try:
                return json.loads(text)
            except ValueError:
                pass
        time.sleep(0.01)
    return {}


@contextmanager
def output_lock(folder: str | os.PathLike, command: str | None = None) -> Iterator[Path]:
    """Hold the writer's lock of ``folder`` (created if missing) for the ``with`` block.

    ``command`` names the holder in the other process's error (default: this process's argv).
    Raises :class:`OutputLockedError` at once when another writer holds it. A folder this call
    created and that is still empty when the block ends is removed again, so a command that fails
    before writing anything leaves nothing behind. A folder on a remote fsspec filesystem
    (``s3://...``) has no file locks: one driver per run directory is then the user's rule.
    """
    from collection.storage import Location, is_url

    if is_url(folder):
        where = Location(folder)
        if not where.local:
            log.debug("%s: remote storage has no file locks; writing without one", where)
            yield where / LOCK_NAME
            return
        folder = where.path
    folder = Path(folder)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    if fcntl is None:  # pragma: no cover - Windows
        log.debug("%s: no fcntl on this platform, writing without a lock", folder)
        yield path
        return
    fd = _acquire(path, folder)
    _HELD.add(fd)
    try:
        holder = {"pid": os.getpid(), "host": socket.gethostname(),
                  "command": command or shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
                  "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder) + "\n").encode("utf-8"), 0)
        yield path
    finally:
        # Unlink while still holding the lock: a waiter that opened the old file notices (inode check).
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        _HELD.discard(fd)
        os.close(fd)
        if created:
            try:
                folder.rmdir()  # only succeeds when nothing was written
            except OSError:
                pass


def _acquire(path: Path, folder: Path) -> int:
    """Open and flock ``path``; retry when the file was replaced between open and flock."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise OutputLockedError(folder, _read_holder(path)) from None
            raise
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # the previous holder removed this file as we locked it: lock the current one


def locks_output(parameter: str, command: str | None = None) -> Callable[[F], F]:
    """Decorator: hold :func:`output_lock` on the folder passed as ``parameter`` for the whole call."""

    def decorate(func: F) -> F:
        signature = inspect.signature(func)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            bound = signature.bind(*args, **kwargs)
            with output_lock(bound.arguments[parameter], command):
                return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate
