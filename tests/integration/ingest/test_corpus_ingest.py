"""``ragstream ingest ../shared/corpus``: every real document ends indexed or failed with a clear reason;
a second run extracts and embeds nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ragstream.cli import main

CORPUS = Path(__file__).resolve().parents[4] / "shared" / "corpus"
#: The broken ones of the corpus, and why they cannot be indexed (see corpus/SOURCES.md).
EXPECTED_FAILURES = {
    "empty.txt": "EmptyDocument",
    "password.pdf": "EncryptedDocument",
    "2206.01062_pg3.pdf": "EncryptedDocument",
    "fake-encrypted.eml": "EncryptedDocument",
}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus is not beside the repo"),
]


def test_the_whole_corpus_goes_through_and_a_rerun_is_free(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = str(tmp_path / "home")
    files = sorted(p.name for p in CORPUS.iterdir() if p.is_file() and not p.name.startswith("."))

    # WHEN the corpus is ingested
    code = main(["ingest", str(CORPUS), "--home", home, "--json"])
    first = {Path(o["source"]).name: o for o in json.loads(capsys.readouterr().out)}

    # THEN every file has an outcome: indexed, or failed for a stated, permanent reason
    assert code == 0
    assert sorted(first) == files
    failed = {name: o for name, o in first.items() if o["status"] == "failed"}
    assert {name: o["error_kind"] for name, o in failed.items()} == EXPECTED_FAILURES
    assert all(o["reason"] and not o["retryable"] for o in failed.values())
    assert {o["status"] for name, o in first.items() if name not in failed} == {"indexed"}
    assert first["GeoTopo-komprimiert.pdf"]["pages"] == 117
    assert first["2206.01062.tif"]["engine"] == "tesseract" and first["2206.01062.tif"]["chunks"] > 0

    main(["documents", "--status", "failed", "--home", home, "--json"])
    failed_before = {r["source"]: r["updated_at"] for r in json.loads(capsys.readouterr().out)}

    # WHEN it is ingested again, unchanged
    main(["ingest", str(CORPUS), "--home", home, "--json"])
    again = json.loads(capsys.readouterr().out)

    # THEN nothing is extracted or embedded; the failures are reported again from the ledger, not retried
    assert sum(o["embedded"] for o in again) == 0
    statuses = {Path(o["source"]).name: o["status"] for o in again}
    assert all(statuses[name] == "skipped" for name in first if name not in failed)
    assert {Path(o["source"]).name: o["reason"] for o in again if o["status"] == "failed"} == {
        name: o["reason"] for name, o in failed.items()
    }

    # AND the ledger lists the failures with their reasons, untouched by the re-run (not parsed again)
    main(["documents", "--status", "failed", "--home", home, "--json"])
    records = json.loads(capsys.readouterr().out)
    assert {Path(r["source"]).name for r in records} == set(EXPECTED_FAILURES)
    assert all(r["error"] for r in records)
    assert {r["source"]: r["updated_at"] for r in records} == failed_before
