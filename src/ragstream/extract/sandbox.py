"""Untrusted documents are parsed in a child process, capped in memory and wall time.

A zip bomb, a page that renders to gigapixels or a parser stuck in a loop cannot be stopped from
inside the process that runs it. :class:`Sandbox` keeps one worker process and hands it one
document at a time: the worker's address space is capped (``RLIMIT_AS``), and the parent kills it
when a document takes longer than its time. Either way the document fails with a permanent
:class:`~ragstream.errors.TooLarge` that names the limit, and the next document gets a new worker.

Workers fork from a ``forkserver`` (a clean, single-threaded process started at the first document,
with our extraction modules, pypdfium2 and Pillow imported), so a replacement starts in
milliseconds; each worker imports an unstructured partitioner the first time it needs it. Only
pipes are used (no ``/dev/shm``), which Lambda supports. Unlike multiprocessing's own workers, ours
do not import the program's main module (they need nothing from it), so a plain script without
``if __name__ == "__main__":`` works: else each worker would run the script's pipeline again.
"""

from __future__ import annotations

import io
import logging
import math
import multiprocessing
import os
import signal
import threading
import time
import weakref
from functools import partial
from multiprocessing import context, forkserver, popen_forkserver, reduction, spawn, util
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from ..budget import UNBOUNDED, Deadline
from ..errors import ConfigError, CorruptDocument, Parked, RagstreamError, TooLarge

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

    from ..config import Settings
    from ..model import Extraction, SourceRef

__all__ = ["Sandbox"]

log = logging.getLogger(__name__)

#: Seconds a new worker may take to start (the forkserver's first start imports the modules below).
STARTUP_SECONDS = 120.0
#: Modules the forkserver imports once, so that every worker starts with them loaded.
PRELOAD = [
    "ragstream.extract",
    "ragstream.extract.unstructured",
    "ragstream.extract.pdf_text",
    "pypdfium2",
    "PIL.Image",
]


class Sandbox:
    """Extract documents in a capped child process; one at a time, from any thread."""

    def __init__(self, *, timeout: float, memory_mb: int) -> None:
        self.timeout = timeout
        self.memory_bytes = memory_mb * 1024 * 1024
        self._lock = threading.Lock()
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None
        self._finalizer: Any = None  # weakref.finalize of the running worker

    @classmethod
    def from_settings(cls, settings: Settings) -> Sandbox:
        return cls(timeout=settings.extract_timeout, memory_mb=settings.extract_memory_mb)

    def extract(
        self,
        data: bytes,
        ref: SourceRef,
        settings: Settings,
        *,
        deadline: Deadline = UNBOUNDED,
        ocr_job: str | None = None,
    ) -> Extraction:
        """What :func:`ragstream.extract.extract` returns or raises (``Parked`` included), within the caps.

        A bounded ``deadline`` (a Lambda's remaining time) shortens the wall-time limit; a document
        cut off by it rather than by ``RAGSTREAM_EXTRACT_TIMEOUT`` is parked (to be retried in an
        invocation with time for it), not failed.
        """
        from . import precheck

        detected = precheck(data, ref, settings)  # what needs no parser fails here, before the worker
        left = deadline.left()
        limit = min(self.timeout, left)
        with self._lock:
            conn = self._worker()
            started = time.monotonic()
            try:
                # the deadline crosses as seconds on the monotonic clock, which the worker shares
                end = None if math.isinf(left) else started + left
                conn.send((data, ref, settings, end, ocr_job, detected))
                ready = conn.poll(limit)
            except (BrokenPipeError, EOFError, OSError):
                ready = True  # the worker died on the way in; its exit code tells why
            if not ready:
                self._stop()
                if limit < self.timeout:
                    raise Parked(f"no time left in this invocation to extract it ({limit:.0f} s)")
                raise TooLarge(
                    f"extraction took longer than {limit:g} s (RAGSTREAM_EXTRACT_TIMEOUT): the document "
                    "is too large or too complex to parse"
                )
            try:
                kind, payload = conn.recv()
            except (EOFError, OSError):
                code = self._stop()
                raise self._death(code, time.monotonic() - started) from None
        if kind == "ok":
            result: Extraction = payload
            return result
        if kind == "memory":
            self._stop()
            raise self._memory_error()
        raise payload

    def close(self) -> None:
        """Stop the worker (a later :meth:`extract` starts another)."""
        with self._lock:
            self._stop()

    # -- the worker --------------------------------------------------------------------------------
    def _worker(self) -> Connection:
        if self._process is not None and self._process.is_alive() and self._conn is not None:
            return self._conn
        self._stop()
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(PRELOAD)
        parent, child = ctx.Pipe()
        process = _Process(
            target=_serve, args=(child, self.memory_bytes), name="ragstream-extract", daemon=True
        )
        process.start()
        child.close()
        self._process, self._conn = process, parent
        # a sandbox dropped without close() (a pipeline of a test, a script) takes its worker along
        self._finalizer = weakref.finalize(self, _end_worker, process, parent)
        try:  # the worker says it is ready once it has started: else it could not import the program
            ready = parent.poll(STARTUP_SECONDS) and parent.recv() == ("ready", None)
        except (EOFError, OSError):
            ready = False
        if not ready:
            code = self._stop()
            raise ConfigError(
                f"the extraction worker could not start (exit code {code}): see the log above, or set "
                "RAGSTREAM_EXTRACT_ISOLATION=none to parse in this process"
            )
        return parent

    def _stop(self) -> int | None:
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        process, conn = self._process, self._conn
        self._process = self._conn = None
        if conn is not None:
            conn.close()
        if process is None:
            return None
        if process.is_alive():
            process.kill()
        process.join(5)
        code = process.exitcode
        process.close()
        return code

    def _memory_error(self) -> TooLarge:
        return TooLarge(
            f"extraction needed more than {self.memory_bytes // 2**20} MB (RAGSTREAM_EXTRACT_MEMORY_MB): "
            "the document is too large or a decompression bomb"
        )

    def _death(self, code: int | None, seconds: float) -> RagstreamError:
        log.warning("extraction worker died (exit code %s) after %.1f s", code, seconds)
        if code in (-signal.SIGKILL, -signal.SIGSEGV, -signal.SIGABRT, -signal.SIGBUS):
            # the kernel's OOM killer, or a native allocation that failed under the cap and aborted
            if code == -signal.SIGSEGV:
                return CorruptDocument("the parser crashed on this document")
            return self._memory_error()
        return CorruptDocument(f"the parser stopped on this document (exit code {code})")


class _MainlessPopen(popen_forkserver.Popen):
    """Start a worker from the forkserver without the program's main module.

    multiprocessing has each child import the parent's ``__main__`` (as ``__mp_main__``), for the
    targets defined there. Ours is :func:`_serve`, and what crosses the pipe is ragstream's own
    types, so the worker needs nothing from it; importing it would run an unguarded script's top
    level again in every worker: its own pipeline, whose sandbox then fails each document with
    multiprocessing's "bootstrapping phase" RuntimeError. This is ``popen_forkserver.Popen._launch``
    (unchanged from Python 3.8 to 3.14) with the main module left out of the preparation data.
    """

    def _launch(self, process_obj: BaseProcess) -> None:
        prep_data = spawn.get_preparation_data(process_obj.name)
        prep_data.pop("init_main_from_name", None)
        prep_data.pop("init_main_from_path", None)
        buf = io.BytesIO()
        context.set_spawning_popen(self)
        try:
            reduction.dump(prep_data, buf)
            reduction.dump(process_obj, buf)
        finally:
            context.set_spawning_popen(None)
        self.sentinel, w = forkserver.connect_to_new_process(self._fds)  # type: ignore[attr-defined]
        # a duplicate of the data pipe's write end is the child's sentinel of this process
        parent_w = os.dup(w)
        self.finalizer = util.Finalize(self, util.close_fds, (parent_w, self.sentinel))  # type: ignore[attr-defined]
        with open(w, "wb", closefd=True) as f:
            f.write(buf.getbuffer())
        self.pid = forkserver.read_signed(self.sentinel)


class _Process(context.ForkServerProcess):
    """A forkserver process started by :class:`_MainlessPopen`."""

    @staticmethod
    def _Popen(process_obj: BaseProcess) -> _MainlessPopen:
        return _MainlessPopen(process_obj)


def _end_worker(process: BaseProcess, conn: Connection) -> None:
    """Stop a worker whose sandbox is gone: closing its pipe ends its loop; a busy one is killed."""
    conn.close()
    process.join(1)
    if process.exitcode is None:
        process.kill()
        process.join(5)


def _until(end: float) -> float:
    return end - time.monotonic()


def _serve(conn: Connection, memory_bytes: int) -> None:
    """The worker: extract each document received, send back ("ok", result) or ("error", exc)."""
    import resource

    from . import extract

    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    conn.send(("ready", None))
    while True:
        try:
            data, ref, settings, end, ocr_job, detected = conn.recv()
        except (EOFError, OSError):
            return
        deadline = UNBOUNDED if end is None else Deadline(remaining=partial(_until, end), reserve=0.0)
        try:
            reply: tuple[str, Any] = (
                "ok",
                extract(data, ref, settings, deadline=deadline, ocr_job=ocr_job, detected=detected),
            )
        except MemoryError:
            conn.send(("memory", None))
            return  # the heap may be in any state: the parent starts a new worker
        except RagstreamError as exc:
            reply = ("error", exc)
        except Exception as exc:  # a parser's own failure: keep its reason, typed
            reason = f"{type(exc).__name__}: {str(exc)[:200]}".rstrip(": ")
            reply = ("error", CorruptDocument(f"the document could not be parsed ({reason})"))
        try:
            conn.send(reply)
        except MemoryError:
            conn.send(("memory", None))
            return
