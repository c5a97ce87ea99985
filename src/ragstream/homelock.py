"""One process at a time on an embedded state folder (``RAGSTREAM_HOME``), said at once.

The embedded engines admit one process per folder, and two writers of one folder corrupt it. Every
command that opens the embedded index takes an exclusive OS lock (``flock``) on ``HOME/.lock``
first, before it reads, extracts or embeds anything, and writes its process id and command there.
A second process gets :class:`~ragstream.errors.HomeInUse` naming the holder, at once. The kernel
releases the lock when its holder exits, ``kill -9`` included: there is no stale lock to clean.

A store reached by URL (Qdrant Cloud, a Chroma or Milvus server) needs no lock: the server
serialises its writers, and the SQLite ledger is safe across processes.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import HomeInUse

if TYPE_CHECKING:
    from .config import Settings

__all__ = ["LOCK_NAME", "FolderLock", "hold_home", "holds_embedded_index"]

log = logging.getLogger(__name__)

LOCK_NAME = ".lock"


def holds_embedded_index(settings: Settings) -> bool:
    """Whether the settings put the index in a folder (or file) of this machine: an embedded store,
    one process at a time. A store reached by URL (a server, a cloud service) needs no lock."""
    return "://" not in settings.index_location


class FolderLock:
    """An exclusive ``flock`` on ``folder/.lock`` that names its holder (process id and command).

    :meth:`acquire` fails at once with :class:`HomeInUse` naming the other holder; the kernel drops
    the lock when the holder exits (``kill -9`` included). Without ``fcntl`` (Windows) nothing is
    locked: the engines' own folder locks are all there is.
    """

    def __init__(self, folder: Path, command: str, advice: str | None = None) -> None:
        self.folder = folder
        self.command = command
        self.advice = advice
        self._fd: int | None = None

    def acquire(self) -> FolderLock:
        try:
            import fcntl
        except ImportError:
            log.debug("no fcntl: %s is not locked", self.folder)
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            message = _in_use_message(self.folder, fd, self.advice)
            os.close(fd)
            raise HomeInUse(message) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "command": self.command}).encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Let go (idempotent); the holder's id goes with it."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.ftruncate(fd, 0)
            os.close(fd)  # closing drops the flock


@contextmanager
def hold_home(home: Path, command: str) -> Iterator[None]:
    """Hold ``home`` for this process while the block runs; :class:`HomeInUse` if another holds it."""
    lock = FolderLock(home, f"ragstream {command}").acquire()
    try:
        yield
    finally:
        lock.release()


def _in_use_message(folder: Path, fd: int, advice: str | None) -> str:
    try:
        holder = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except ValueError:
        holder = {}
    pid = holder.get("pid", "?")
    command = holder.get("command", "ragstream")
    if advice is None:
        advice = (
            "stop it, or query through it (its HTTP API), or use another RAGSTREAM_HOME"
            if command in ("ragstream serve", "ragstream dev")
            else "wait for it to finish, or use another RAGSTREAM_HOME"
        )
    return (
        f"{folder} is in use by process {pid} (`{command}`): {advice}; a store reached by URL "
        "(RAGSTREAM_INDEX_URL) serves several processes at once"
    )
