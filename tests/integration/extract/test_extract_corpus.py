"""Every file of the shared corpus ends as an Extraction or a typed DocumentError, nothing else."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ragstream.config import Settings
from ragstream.errors import DocumentError, EmptyDocument, EncryptedDocument
from ragstream.extract import detect, extract
from ragstream.model import Extraction, SourceRef

CORPUS = Path(__file__).resolve().parents[3].parent / "shared" / "corpus"
FILES = (
    sorted(p for p in CORPUS.glob("*") if p.is_file() and p.name != "SOURCES.md") if CORPUS.is_dir() else []
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not FILES, reason=f"shared corpus not found at {CORPUS}"),
]


def run(path: Path) -> tuple[str, Extraction | DocumentError, float]:
    data = path.read_bytes()  # read in place, never copied
    try:
        kind = detect(data, path.name).kind
    except DocumentError:
        kind = "-"
    started = time.perf_counter()
    try:
        outcome: Extraction | DocumentError = extract(
            data, SourceRef(source=path.as_uri(), key=path.name), Settings()
        )
    except DocumentError as exc:
        outcome = exc
    return kind, outcome, time.perf_counter() - started


def test_corpus_table(capsys: pytest.CaptureFixture[str]) -> None:
    rows = [
        "| file | detected type | engine | pages | elements | failure reason | seconds |",
        "|---" * 7 + "|",
    ]
    outcomes: dict[str, Extraction | DocumentError] = {}
    for path in FILES:
        kind, outcome, seconds = run(path)
        outcomes[path.name] = outcome
        if isinstance(outcome, Extraction):
            assert outcome.elements and all(e.text.strip() for e in outcome.elements)
            rows.append(
                f"| {path.name} | {kind} | {outcome.engine} | {outcome.pages or ''} | "
                f"{len(outcome.elements)} | | {seconds:.2f} |"
            )
        else:
            assert str(outcome) and "Traceback" not in str(outcome)
            rows.append(f"| {path.name} | {kind} | | | | {outcome.kind}: {outcome} | {seconds:.2f} |")
    with capsys.disabled():
        print("\n" + "\n".join(rows))

    # Known broken files fail the way a user understands.
    assert isinstance(outcomes["password.pdf"], EncryptedDocument)
    assert isinstance(outcomes["2206.01062_pg3.pdf"], EncryptedDocument)
    assert isinstance(outcomes["empty.txt"], EmptyDocument)
    assert isinstance(outcomes["fake-encrypted.eml"], EncryptedDocument)
    # Born-digital multi-page PDFs send zero pages to OCR in auto mode.
    for name in ("multi_page.pdf", "GeoTopo-komprimiert.pdf", "redp5110_sampled.pdf", "normal_4pages.pdf"):
        result = outcomes[name]
        assert isinstance(result, Extraction) and result.engine == "pdf_text" and result.ocr_pages == 0, name
        assert result.pages and result.pages > 1
    geotopo = outcomes["GeoTopo-komprimiert.pdf"]
    assert isinstance(geotopo, Extraction) and geotopo.pages == 117
