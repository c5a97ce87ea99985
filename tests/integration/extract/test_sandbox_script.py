"""The pipeline used from a plain script, with no ``if __name__ == "__main__":`` guard: the sandbox's
workers must not run the script again (each would run its own pipeline, whose sandbox fails every
document with multiprocessing's "bootstrapping phase" RuntimeError). The script runs for real in a
subprocess: child-process extraction, local embedder, index and ledger."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

SCRIPT = """\
import json
import sys

from ragstream.config import Settings
from ragstream.ingest import Pipeline

print("top level ran", file=sys.stderr)
pipeline = Pipeline.from_settings(Settings(home={home!r}, embedding_provider="local", llm="extractive"))
print(json.dumps([outcome.model_dump(mode="json") for outcome in pipeline.sync({folder!r})]))
"""


def test_an_unguarded_script_indexes_its_documents(tmp_path: Path) -> None:
    # GIVEN a folder of three small documents and a script that ingests it at its top level
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "leave.md").write_text("# Leave\n\nEvery employee has 25 days of paid leave.\n")
    (folder / "expenses.txt").write_text("Expenses above 500 euros need a manager's approval.\n")
    (folder / "travel.md").write_text("# Travel\n\nTrains are preferred for trips under four hours.\n")
    script = tmp_path / "ingest_script.py"
    script.write_text(SCRIPT.format(home=str(tmp_path / "home"), folder=str(folder)), encoding="utf-8")
    # WHEN it runs as a user runs it: python script.py
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    # THEN every document is indexed, by one run of the script, and no document met an error
    assert done.returncode == 0, done.stderr
    outcomes = {Path(o["source"]).name: o for o in json.loads(done.stdout.strip().splitlines()[-1])}
    assert {name: o["status"] for name, o in outcomes.items()} == dict.fromkeys(
        ["expenses.txt", "leave.md", "travel.md"], "indexed"
    ), done.stderr
    assert done.stderr.count("top level ran") == 1, done.stderr
    assert "unexpected error" not in done.stderr
    assert "RuntimeError" not in done.stderr
