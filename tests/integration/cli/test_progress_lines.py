"""``ragstream ingest`` off a terminal (its stderr a pipe, as in CI or a log file) prints its
progress line every RAGSTREAM_PROGRESS_SECONDS, with the listing's total from the start."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_ingest_off_a_terminal_reports_how_far_it_is(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for n in range(6):
        (docs / f"note-{n}.md").write_text(f"# Note {n}\n\nThe budget of team {n} is {n * 100} euros.\n")
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("RAGSTREAM_", "OPENAI_"))}
    result = subprocess.run(
        [sys.executable, "-m", "ragstream", "ingest", str(docs), "--home", str(tmp_path / "home")],
        capture_output=True,
        text=True,
        timeout=300,
        env={**environ, "PYTHONPATH": str(ROOT / "src"), "RAGSTREAM_PROGRESS_SECONDS": "0.000001"},
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("ingest: ")]
    assert lines, result.stderr
    done = [int(m.group(1)) for m in (re.match(r"ingest: (\d+)/6 documents \(\d+%\)", x) for x in lines) if m]
    assert len(done) == len(lines) and done == sorted(done) and done[-1] == 6
    assert "chunks" in lines[-1] and "doc/s" in lines[-1]
