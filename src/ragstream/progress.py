"""How far a long command is: documents done of a known total, the file just done, chunks, failures.

On a terminal a tqdm bar (total, rate, ETA and the last file in its postfix); off a terminal (CI, a log
file, ``nohup``) one plain line every ``every`` seconds, so that a long run is never silent:

    ingest: 120/500 documents (24%), 3,412 chunks, 2 failed, 4.1 doc/s, about 1m33s left
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import IO, Any

from .model import Outcome
from .printable import printable

__all__ = ["Progress"]


class Progress:
    """Told the total once the listing is known (``set_total``), then each outcome (``update``)."""

    def __init__(
        self,
        desc: str,
        *,
        tty: bool,
        every: float = 30.0,
        stream: IO[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.desc = desc
        self.every = every
        self.stream = stream if stream is not None else sys.stderr
        self.clock = clock
        self.total: int | None = None
        self.done = self.chunks = self.failed = 0
        self._started = self._last_line = clock()
        self._bar: Any = None
        if tty:
            from tqdm import tqdm

            self._bar = tqdm(desc=desc, unit="doc", file=self.stream, leave=False, dynamic_ncols=True)

    def set_total(self, total: int) -> None:
        """The number of documents this run will report (more may be added by later calls)."""
        self.total = (self.total or 0) + total
        if self._bar is not None:
            self._bar.total = self.total
            self._bar.refresh()

    def update(self, outcome: Outcome) -> None:
        self.done += 1
        self.chunks += outcome.chunks if outcome.status == "indexed" else 0
        self.failed += outcome.status == "failed"
        if self._bar is not None:
            name = outcome.source.rstrip("/").rsplit("/", 1)[-1]
            self._bar.set_postfix_str(printable(name)[:40], refresh=False)
            self._bar.update(1)
        elif self.clock() - self._last_line >= self.every:
            self._last_line = self.clock()
            print(self.line(), file=self.stream, flush=True)

    def line(self) -> str:
        """The one-line summary of where the run stands."""
        elapsed = max(self.clock() - self._started, 1e-9)
        rate = self.done / elapsed
        of = f"/{self.total}" if self.total else ""
        share = f" ({self.done / self.total:.0%})" if self.total else ""
        parts = [f"{self.desc}: {self.done}{of} documents{share}", f"{self.chunks:,} chunks"]
        if self.failed:
            parts.append(f"{self.failed} failed")
        parts.append(f"{rate:.1f} doc/s")
        if self.total and rate > 0 and self.done < self.total:
            parts.append(f"about {_duration((self.total - self.done) / rate)} left")
        return ", ".join(parts)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds + 0.5), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
