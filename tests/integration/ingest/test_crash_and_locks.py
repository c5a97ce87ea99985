"""Crashes, a second process, and edits that hide: the index stays equal to the folder.

Each test runs the real ``ragstream`` command in subprocesses on the embedded default (Qdrant Edge,
SQLite ledger, local embedder), kills them where it hurts, and compares the index with the files.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ragstream.config import Settings
from ragstream.homelock import hold_home
from ragstream.index import open_index
from ragstream.ledger.sqlite import SQLiteLedger
from ragstream.model import Status

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples"


def ragstream(*argv: str, home: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ragstream.cli", *argv, "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "RAGSTREAM_EMBEDDING_PROVIDER": "local"},
    )


def index_of(home: Path) -> dict[str, str]:
    """source -> version of every point in the index (one version per source, or the test fails)."""
    index = open_index(Settings(home=home))
    try:
        tally = index.versions()
    finally:
        index.close()
    versions: dict[str, set[str]] = {}
    for source, version in tally:
        versions.setdefault(source, set()).add(version)
    assert all(len(v) == 1 for v in versions.values()), f"two versions of one source: {versions}"
    return {source: v.pop() for source, v in versions.items()}


def folder_of(root: Path) -> dict[str, str]:
    """source -> sha256 of every file under ``root``, as ingest names them."""
    return {
        p.resolve().as_uri(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    shutil.copytree(EXAMPLES, folder)
    return folder


@pytest.fixture
def many_docs(tmp_path: Path) -> Path:
    """40 small distinct documents: enough that a kill lands in the middle of a run."""
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(40):
        body = "\n\n".join(
            f"Section {j} of note {i}. The retention period for archive class {i}-{j} is {i + j} years, "
            f"reviewed by team {i % 7}." * 3
            for j in range(6)
        )
        (folder / f"note-{i:02d}.md").write_text(f"# Note {i}\n\n{body}\n", encoding="utf-8")
    return folder


@pytest.fixture
def crash_script(tmp_path: Path) -> Path:
    """A process that ingests a folder and dies (``os._exit``, as a kill would) right after the first
    upsert, before any ledger commit."""
    script = tmp_path / "crash_after_upsert.py"
    script.write_text(
        textwrap.dedent(
            """
            import os, sys
            from pathlib import Path
            from ragstream.config import Settings
            from ragstream.index import open_index
            from ragstream.ingest import Pipeline

            class DiesAfterUpsert:
                '''Any index, whose first upsert is the process's last act.'''
                def __init__(self, inner):
                    self.inner = inner
                def __getattr__(self, name):
                    return getattr(self.inner, name)
                def upsert(self, points):
                    self.inner.upsert(points)
                    self.inner.close()  # what the OS would leave: the writes applied, nothing else
                    os._exit(9)

            if __name__ == "__main__":  # extraction workers import the main module
                settings = Settings(home=Path(sys.argv[1]), embedding_provider="local")
                pipeline = Pipeline.from_settings(settings, index=DiesAfterUpsert(open_index(settings)))
                pipeline.sync(sys.argv[2])
                sys.exit("the pipeline should have died in its upsert")
            """
        ),
        encoding="utf-8",
    )
    return script


def test_a_crash_between_upsert_and_commit_is_cleaned_up_by_the_next_ingest(
    docs: Path, tmp_path: Path, crash_script: Path
) -> None:
    home = tmp_path / "home"
    # GIVEN a first ingest that died after writing its points, before recording them
    died = subprocess.run([sys.executable, str(crash_script), str(home), str(docs)], capture_output=True)
    assert died.returncode == 9, died.stderr
    assert index_of(home), "the crash came after the upsert: points are in the index"
    # the ledger knows those sources: interrupted, to be retried
    with SQLiteLedger(home / "ledger.sqlite") as ledger:
        records, _ = ledger.list(limit=100)
    assert records and {r.status for r in records} == {Status.FAILED}
    assert all(r.retryable and r.error_kind == "Interrupted" for r in records)

    # WHEN, before the next run, one file is edited and one deleted
    (docs / "handbook" / "leave-policy.md").write_text("# Leave\n\nEmployees get 30 days of leave.\n")
    (docs / "engineering" / "adr-007-vector-database.md").unlink()
    done = ragstream("ingest", str(docs), home=home)

    # THEN the index equals the folder: no orphan of the dead run, no second version
    assert done.returncode == 0, done.stderr
    assert index_of(home) == folder_of(docs)


def test_kill_9_in_the_middle_of_an_ingest_then_ingest_again(many_docs: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    # GIVEN an ingest killed with SIGKILL once it has recorded some documents
    proc = subprocess.Popen(
        [sys.executable, "-m", "ragstream.cli", "ingest", str(many_docs), "--home", str(home)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "RAGSTREAM_EMBEDDING_PROVIDER": "local"},
    )
    deadline = time.monotonic() + 120
    ledger_file = home / "ledger.sqlite"
    while time.monotonic() < deadline and proc.poll() is None:
        if ledger_file.exists():
            with SQLiteLedger(ledger_file) as ledger:
                if len(ledger.list(limit=100)[0]) >= 5:
                    break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    # WHEN files change meanwhile and ingest runs again
    (many_docs / "note-00.md").unlink()
    (many_docs / "note-39.md").write_text("# Note 39\n\nRewritten after the crash.\n", encoding="utf-8")
    done = ragstream("ingest", str(many_docs), home=home)
    # THEN the index equals the folder, and every document is indexed
    assert done.returncode == 0, done.stderr
    assert index_of(home) == folder_of(many_docs)
    with SQLiteLedger(ledger_file) as ledger:
        records, _ = ledger.list(limit=100)
    live = {r.source: r.status for r in records if r.status is not Status.DELETED}
    assert set(live) == set(folder_of(many_docs))
    assert set(live.values()) == {Status.INDEXED}


def test_a_second_process_is_told_at_once_who_holds_the_folder(docs: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    # GIVEN this process holding the state folder, as a running ingest would
    with hold_home(home, "ingest"):
        started = time.monotonic()
        # WHEN another ingest starts on it
        second = ragstream("ingest", str(docs), home=home)
        elapsed = time.monotonic() - started
    # THEN it stops before reading anything, naming the holder
    assert second.returncode == 2
    assert f"in use by process {os.getpid()} (`ragstream ingest`)" in second.stderr
    assert "wait for it to finish" in second.stderr
    assert elapsed < 30  # an interpreter start, not an extraction of the folder
    assert not (home / "ledger.sqlite").exists()


@pytest.fixture
def serving(docs: Path, tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[str]]]:
    home = tmp_path / "home"
    assert ragstream("ingest", str(docs), home=home).returncode == 0
    proc = subprocess.Popen(
        [sys.executable, "-m", "ragstream.cli", "serve", "--port", "0", "--home", str(home)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "RAGSTREAM_EMBEDDING_PROVIDER": "local"},
    )
    assert proc.stderr is not None
    for line in proc.stderr:  # serve prints its URL once it listens
        if "ragstream API on" in line:
            break
    yield home, proc
    proc.terminate()
    proc.wait(30)


def test_ingest_next_to_serve_says_what_to_do(
    serving: tuple[Path, subprocess.Popen[str]], docs: Path
) -> None:
    home, server = serving
    (docs / "handbook" / "new.md").write_text("# New\n\nA new policy.\n", encoding="utf-8")
    second = ragstream("ingest", str(docs), home=home)
    assert second.returncode == 2
    assert f"in use by process {server.pid} (`ragstream serve`)" in second.stderr
    assert "stop it" in second.stderr


def test_an_edit_that_keeps_size_and_mtime_is_found_by_reconcile(docs: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert ragstream("ingest", str(docs), home=home).returncode == 0
    # GIVEN an edit of the same length, with the old modification time put back (touch -r)
    policy = docs / "handbook" / "leave-policy.md"
    stat = policy.stat()
    text = policy.read_text(encoding="utf-8")
    assert "25 days" in text
    policy.write_text(text.replace("25 days", "27 days"), encoding="utf-8")
    os.utime(policy, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert policy.stat().st_size == stat.st_size
    # WHEN ingest runs: it trusts mtime and size, as documented
    assert ragstream("ingest", str(docs), home=home).returncode == 0
    assert index_of(home) != folder_of(docs)
    # THEN reconcile hashes the bytes and indexes the edit
    assert ragstream("reconcile", str(docs), home=home).returncode == 0
    assert index_of(home) == folder_of(docs)
