"""Hostile documents in a folder of good ones: each fails with the limit it hit, within that limit,
and the good files of the same run are indexed. The real ``ragstream ingest`` runs in a subprocess
(child-process extraction, real parsers, OCR, embedder, index and ledger)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ragstream.config import Settings
from ragstream.extract import extract
from ragstream.model import SourceRef
from tests.support import hostile

ROOT = Path(__file__).resolve().parents[3]

TIMEOUT = 20  # RAGSTREAM_EXTRACT_TIMEOUT of the run: the 1,000-page scan must hit it

#: case -> what its failure reason must name
EXPECTED = {
    "docx bomb (1 GiB XML)": "RAGSTREAM_MAX_EXPANDED_MB",
    "pptx bomb (1 GiB part)": "RAGSTREAM_MAX_EXPANDED_MB",
    "xlsx bomb (1 GiB sheet)": "RAGSTREAM_MAX_EXPANDED_MB",
    "odt bomb (1 GiB content)": "RAGSTREAM_MAX_EXPANDED_MB",
    "epub bomb (1 GiB chapter)": "RAGSTREAM_MAX_EXPANDED_MB",
    "XML entity bomb": "declares XML entities",
    "docx entity bomb": "declares XML entities",
    "TIFF of 3,001 frames": "RAGSTREAM_MAX_PAGES",
    "PNG of 1.6 gigapixels": "RAGSTREAM_MAX_IMAGE_PIXELS",
    "CSV of 1,000,000 columns": "RAGSTREAM_MAX_TABLE_COLUMNS",
    "image-only PDF of 1,000 pages": "RAGSTREAM_EXTRACT_TIMEOUT",
    "PDF stream inflating to 1 GiB": "RAGSTREAM_EXTRACT_MEMORY_MB",
    "text file of 150 MB": "RAGSTREAM_MAX_TEXT_MB",
}


def ingest(folder: Path, home: Path) -> tuple[int, dict[str, dict], float]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "ragstream.cli", "ingest", str(folder), "--home", str(home), "--json"],
        capture_output=True,
        text=True,
        timeout=900,
        env={
            **os.environ,
            "RAGSTREAM_EMBEDDING_PROVIDER": "local",
            "RAGSTREAM_EXTRACT_TIMEOUT": str(TIMEOUT),
            "RAGSTREAM_OCR": "tesseract",
        },
    )
    assert done.stdout, done.stderr
    return done.returncode, {o["source"]: o for o in json.loads(done.stdout)}, time.monotonic() - started


@pytest.mark.slow
def test_every_bomb_fails_with_its_limit_and_the_good_files_are_indexed(tmp_path: Path) -> None:
    if shutil.which("tesseract") is None:
        pytest.skip("tesseract is not installed (scripts/setup installs it): the scan case needs OCR")
    # GIVEN a folder of good documents and every hostile case
    folder = tmp_path / "docs"
    shutil.copytree(ROOT / "examples", folder)
    paths = hostile.write(folder / "hostile")
    home = tmp_path / "home"

    # WHEN it is ingested
    code, outcomes, seconds = ingest(folder, home)

    # THEN each hostile file failed, permanently, with the limit it hit
    for name, path in paths.items():
        outcome = outcomes[path.resolve().as_uri()]
        assert outcome["status"] == "failed", (name, outcome)
        assert outcome["error_kind"] == "TooLarge" and not outcome["retryable"], (name, outcome)
        assert EXPECTED[name] in outcome["reason"], (name, outcome["reason"])
    # AND every good file was indexed, in the same run
    good = [p for p in folder.rglob("*") if p.is_file() and "hostile" not in p.parts]
    assert {outcomes[p.resolve().as_uri()]["status"] for p in good} == {"indexed"}
    assert code == 0
    # AND the run as a whole took the time limit once (the scan), not the bombs' own time
    assert seconds < 10 * TIMEOUT

    # WHEN it runs again: the failures were recorded, so nothing is parsed again (the recorded
    # reason is reported, and the scan does not take its time limit a second time)
    code, again, seconds = ingest(folder, home)
    assert code == 0
    for path in paths.values():
        source = path.resolve().as_uri()
        assert again[source]["status"] == "failed"
        assert again[source]["reason"] == outcomes[source]["reason"]
    assert {again[p.resolve().as_uri()]["status"] for p in good} == {"skipped"}
    assert seconds < TIMEOUT


@pytest.mark.parametrize("levels", [300, 100_000])
def test_deeply_nested_html_is_read_in_full(levels: int) -> None:
    data = hostile.deep_html(levels, "The closing paragraph names the auditor: Ferris and Lake.")
    result = extract(data, SourceRef(source="file:///x/deep.html", key="deep.html"), Settings())
    text = " ".join(e.text for e in result.elements)
    assert "Before the nesting." in text
    assert "At the bottom." in text
    assert "Ferris and Lake" in text


def test_a_ragged_csv_is_indexed_as_text() -> None:
    result = extract(
        hostile.ragged_csv(), SourceRef(source="file:///x/export.csv", key="export.csv"), Settings()
    )
    text = " ".join(e.text for e in result.elements)
    assert "preliminary" in text and "South" in text


def test_a_program_whose_main_module_is_unguarded_extracts_in_the_sandbox(tmp_path: Path) -> None:
    # a script with no `if __name__ == "__main__":` guard: the worker must not run it again
    script = tmp_path / "unguarded.py"
    script.write_text(
        "from ragstream.config import Settings\n"
        "from ragstream.extract.sandbox import Sandbox\n"
        "from ragstream.model import SourceRef\n"
        "print('top level ran', flush=True)\n"
        "result = Sandbox(timeout=30, memory_mb=2048).extract(b'some words here', "
        "SourceRef(source='file:///x/a.txt', key='a.txt'), Settings())\n"
        "print(' '.join(e.text for e in result.elements))\n",
        encoding="utf-8",
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("top level ran") == 1, done.stdout
    assert "some words here" in done.stdout, done.stderr


def test_a_document_cut_off_by_the_invocations_time_is_parked_not_failed() -> None:
    if shutil.which("tesseract") is None:
        pytest.skip("tesseract is not installed (scripts/setup installs it): the scan case needs OCR")
    from ragstream.budget import Deadline
    from ragstream.errors import Parked
    from ragstream.extract.sandbox import Sandbox

    # GIVEN a long scan, 3 s left in the invocation, and a per-document limit of 120 s
    settings = Settings(ocr="tesseract")
    sandbox = Sandbox(timeout=120, memory_mb=2048)
    ends = time.monotonic() + 3
    deadline = Deadline(remaining=lambda: ends - time.monotonic(), reserve=0.0)
    ref = SourceRef(source="file:///x/scans.pdf", key="scans.pdf")
    started = time.monotonic()
    # WHEN it is extracted THEN it is parked (to be retried with time for it), not failed for good
    with pytest.raises(Parked, match="no time left"):
        sandbox.extract(hostile.image_only_pdf(200), ref, settings, deadline=deadline)
    assert time.monotonic() - started < 30
    sandbox.close()


def test_a_sandbox_dropped_without_close_takes_its_worker_along() -> None:
    import gc

    import psutil

    from ragstream.extract.sandbox import Sandbox

    sandbox = Sandbox(timeout=30, memory_mb=2048)
    sandbox.extract(b"A few words to index.", SourceRef(source="file:///x/a.txt", key="a.txt"), Settings())
    worker = psutil.Process(sandbox._process.pid)  # type: ignore[union-attr]
    assert worker.is_running()
    del sandbox
    gc.collect()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and worker.is_running() and worker.status() != psutil.STATUS_ZOMBIE:
        time.sleep(0.05)
    assert not worker.is_running() or worker.status() == psutil.STATUS_ZOMBIE
