"""Progress off a terminal: one line every ``every`` seconds with done/total, chunks, failures and
what is left; on a clock the test moves, so nothing here depends on the machine's speed."""

from __future__ import annotations

import io

from ragstream.model import Outcome
from ragstream.progress import Progress


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _indexed(name: str, chunks: int = 10) -> Outcome:
    return Outcome(source=f"file:///docs/{name}", status="indexed", chunks=chunks)


def test_a_line_every_period_with_the_total_and_what_is_left() -> None:
    clock, out = Clock(), io.StringIO()
    progress = Progress("ingest", tty=False, every=30.0, stream=out, clock=clock)
    progress.set_total(100)
    clock.now = 10.0
    progress.update(_indexed("a.md"))
    assert out.getvalue() == ""  # not yet a period
    clock.now = 40.0
    progress.update(Outcome(source="file:///docs/b.pdf", status="failed", reason="encrypted"))
    lines = out.getvalue().splitlines()
    assert lines == ["ingest: 2/100 documents (2%), 10 chunks, 1 failed, 0.1 doc/s, about 32m40s left"]
    clock.now = 50.0
    progress.update(_indexed("c.md"))
    assert len(out.getvalue().splitlines()) == 1  # the next line comes 30 s after the last
    progress.close()


def test_the_total_grows_with_each_listing_and_a_finished_run_has_nothing_left() -> None:
    clock, out = Clock(), io.StringIO()
    progress = Progress("reconcile", tty=False, every=1.0, stream=out, clock=clock)
    progress.set_total(1)
    progress.set_total(1)
    for name in ("a.md", "b.md"):
        clock.now += 2.0
        progress.update(_indexed(name, chunks=1500))
    assert out.getvalue().splitlines()[-1] == "reconcile: 2/2 documents (100%), 3,000 chunks, 0.5 doc/s"


def test_on_a_terminal_the_bar_knows_the_total_and_the_last_file() -> None:
    out = io.StringIO()
    progress = Progress("ingest", tty=True, stream=out)
    progress.set_total(3)
    progress.update(_indexed("handbook.md"))
    progress._bar.refresh()
    assert "1/3" in out.getvalue() and "handbook.md" in out.getvalue()
    progress.close()
