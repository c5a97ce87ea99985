"""``ragstream ingest`` of a folder that the file system makes hard: links, FIFOs, vanishing files,
unreadable folders, names that are not UTF-8. Real files, embedder, index and ledger."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from ragstream.blobs import LocalFiles, Unlisted
from ragstream.cli import main
from ragstream.model import SourceRef
from ragstream.sources import path_of

ROOT = Path(__file__).resolve().parents[3]
POLICY = "# Leave\n\nEvery employee receives 25 days of paid annual leave per calendar year.\n"


def ingest(capsys: pytest.CaptureFixture[str], folder: Path, home: Path) -> tuple[int, dict[str, dict]]:
    code = main(["ingest", str(folder), "--home", str(home), "--json"])
    outcomes = json.loads(capsys.readouterr().out)
    return code, {o["source"]: o for o in outcomes}


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    (folder / "team").mkdir(parents=True)
    (folder / "policy.md").write_text(POLICY, encoding="utf-8")
    (folder / "team" / "notes.md").write_text("# Notes\n\nThe team meets on Tuesdays.\n", encoding="utf-8")
    return folder


def test_links_fifos_and_devices_are_reported_and_the_rest_is_indexed(
    docs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a folder with every kind of entry that is not a file of its own
    (docs / "passwd.md").symlink_to("/etc/passwd")
    (docs / "zero.md").symlink_to("/dev/zero")
    (docs / "dangling.md").symlink_to(docs / "missing.md")
    (docs / "loop-a.md").symlink_to(docs / "loop-b.md")
    (docs / "loop-b.md").symlink_to(docs / "loop-a.md")
    (docs / "alias.md").symlink_to(docs / "policy.md")  # inside: its target is listed instead
    (docs / "outside").symlink_to(tmp_path)  # a folder link out
    os.mkfifo(docs / "pipe.md")

    # WHEN it is ingested (a FIFO would hang a naive read forever)
    code, outcomes = ingest(capsys, docs, tmp_path / "home")

    # THEN the two documents are indexed and every other entry is failed with its reason
    indexed = {s for s, o in outcomes.items() if o["status"] == "indexed"}
    assert indexed == {(docs / "policy.md").as_uri(), (docs / "team" / "notes.md").as_uri()}
    reasons = {Path(s).name: o["reason"] for s, o in outcomes.items() if o["status"] == "failed"}
    assert reasons == {
        "passwd.md": "not indexed: a symlink to /etc/passwd, outside the folder",
        "zero.md": "not indexed: a symlink to /dev/zero, outside the folder",
        "dangling.md": "not indexed: a dangling symlink",
        "loop-a.md": "not indexed: a symlink loop",
        "loop-b.md": "not indexed: a symlink loop",
        "outside": f"not indexed: a symlink to {tmp_path}, outside the folder",
        "pipe.md": "not indexed: a FIFO",
    }
    assert all(
        o["error_kind"] == "Unreadable" and not o["retryable"] for o in outcomes.values() if o["reason"]
    )
    assert code == 0  # permanent failures, as for a corrupt file

    # AND the failures are in the ledger, for `documents --status failed`
    assert main(["documents", "--status", "failed", "--home", str(tmp_path / "home"), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == len(reasons)


def test_a_file_that_vanishes_while_listing_is_simply_gone(docs: Path) -> None:
    # GIVEN Office-style lock files appearing and vanishing while the folder is listed
    stop = threading.Event()

    def churn() -> None:
        while not stop.is_set():
            for i in range(20):
                lock = docs / f"~$draft-{i}.docx"
                lock.write_bytes(b"lock")
                lock.unlink(missing_ok=True)

    worker = threading.Thread(target=churn)
    worker.start()
    try:
        listings = [list(LocalFiles().list(str(docs))) for _ in range(200)]
    finally:
        stop.set()
        worker.join()
    # THEN no listing fails, and the real files are always there
    for entries in listings:
        sources = {e.source for e in entries if isinstance(e, SourceRef)}
        assert {(docs / "policy.md").as_uri(), (docs / "team" / "notes.md").as_uri()} <= sources
        assert not [e for e in entries if isinstance(e, Unlisted)]


def _without_root_privilege() -> list[str]:
    """A command prefix under which permissions apply: root reads every folder, unless it drops the
    capabilities that let it (util-linux's setpriv)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: permissions cannot be denied to this process")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--"]


def test_an_unreadable_folder_is_an_error_not_a_deletion(
    docs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import subprocess
    import sys

    prefix = _without_root_privilege()
    home = tmp_path / "home"

    def run() -> tuple[int, dict[str, dict]]:
        done = subprocess.run(
            [
                *prefix,
                sys.executable,
                "-m",
                "ragstream.cli",
                "ingest",
                str(docs),
                "--home",
                str(home),
                "--json",
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.stdout, done.stderr
        return done.returncode, {o["source"]: o for o in json.loads(done.stdout)}

    notes = (docs / "team" / "notes.md").as_uri()
    code, first = run()
    assert first[notes]["status"] == "indexed"
    # WHEN the subfolder becomes unreadable
    (docs / "team").chmod(0)
    try:
        code, second = run()
    finally:
        (docs / "team").chmod(0o755)
    # THEN it is a retryable error for the folder, and its document is neither deleted nor touched
    folder = (docs / "team").as_uri() + "/"
    assert second[folder]["status"] == "failed" and second[folder]["retryable"]
    assert "cannot list folder" in second[folder]["reason"]
    assert notes not in second
    assert code == 1
    # AND once readable again, nothing was lost: the document is still indexed, unchanged
    code, third = run()
    assert third[notes]["status"] == "skipped"


def test_a_name_that_is_not_utf8_is_indexed_under_an_exact_source(
    docs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a file whose name is Latin-1 bytes (an old archive, a Windows share)
    raw = os.fsencode(docs) + b"/caf\xe9-menu.md"
    with open(raw, "wb") as f:
        f.write(b"# Menu\n\nThe cafe serves soup on Fridays.\n")
    # WHEN the folder is ingested
    code, outcomes = ingest(capsys, docs, tmp_path / "home")
    # THEN the file is indexed, under a source that names its bytes exactly and maps back to them
    (source,) = [s for s in outcomes if "caf" in s]
    assert source.endswith("/caf%E9-menu.md")
    assert outcomes[source]["status"] == "indexed"
    assert os.fsencode(path_of(source)) == raw
    # AND a second run skips it (the same identity), and deleting it deletes it
    code, again = ingest(capsys, docs, tmp_path / "home")
    assert code == 0
    assert again[source]["status"] == "skipped"
    os.unlink(raw)
    _, after = ingest(capsys, docs, tmp_path / "home")
    assert after[source]["status"] == "deleted"


def test_an_unreadable_file_is_a_permanent_typed_failure(
    docs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a FIFO put where a listed file was, between the listing and the read: no hang, a reason
    ref = next(e for e in LocalFiles().list(str(docs)) if isinstance(e, SourceRef) and e.key == "policy.md")
    (docs / "policy.md").unlink()
    os.mkfifo(docs / "policy.md")
    started = time.monotonic()
    from ragstream.errors import Unreadable

    with pytest.raises(Unreadable, match="is a FIFO"):
        LocalFiles().read(ref, max_bytes=1 << 20)
    assert time.monotonic() - started < 5
