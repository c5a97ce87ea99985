"""One handle per embedded store folder and process.

An embedded store (Qdrant's local mode, a Qdrant Edge folder, a FAISS folder) can be open in one
process at a time, and within a process every index on the folder must share one handle: e.g. the
ingest and query handlers of ``ragstream dev``. Store modules keep their handles here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["acquire", "release"]

T = TypeVar("T")

_HANDLES: dict[tuple[str, Path], Any] = {}
_LOCK = threading.Lock()


def acquire(kind: str, path: Path, factory: Callable[[Path], T]) -> T:
    """The process's handle of ``kind`` on ``path``, made by ``factory(resolved path)`` the first time."""
    key = (kind, path.resolve())
    with _LOCK:
        handle = _HANDLES.get(key)
        if handle is None:
            key[1].mkdir(parents=True, exist_ok=True)
            handle = _HANDLES[key] = factory(key[1])
        return handle


def release(handle: Any) -> None:
    """Forget ``handle`` (it is being closed): the next :func:`acquire` makes a new one."""
    with _LOCK:
        for key, held in list(_HANDLES.items()):
            if held is handle:
                del _HANDLES[key]
