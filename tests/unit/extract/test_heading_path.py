"""The path of headings each element and chunk lies under, from extraction through chunking."""

from __future__ import annotations

from pathlib import Path

from ragstream.chunking import chunk_elements
from ragstream.config import Settings
from ragstream.extract import extract
from ragstream.model import SourceRef

REPORT = """# Harbor Report

Intro text about the company and its quarter.

## Liquidity

Cash was 12 million at the end of the quarter.

### Credit facility

The facility is 50 million and undrawn.

## Outlook

Growth is expected in the next quarter.
"""


def test_markdown_headings_nest_and_close_by_level(tmp_path: Path) -> None:
    # GIVEN a Markdown report with headings on three levels
    path = tmp_path / "report.md"
    path.write_text(REPORT, encoding="utf-8")
    # WHEN it is extracted (unstructured, as in the pipeline) and chunked
    extraction = extract(
        path.read_bytes(), SourceRef(source=path.as_uri(), key=path.name), Settings(home=tmp_path / "home")
    )
    headings = {e.text: e.headings for e in extraction.elements if e.type != "Title"}
    # THEN each paragraph lies under the path of open headings; a level-2 heading closes level 3
    assert headings["Intro text about the company and its quarter."] == ["Harbor Report"]
    assert headings["Cash was 12 million at the end of the quarter."] == ["Harbor Report", "Liquidity"]
    assert headings["The facility is 50 million and undrawn."] == [
        "Harbor Report",
        "Liquidity",
        "Credit facility",
    ]
    assert headings["Growth is expected in the next quarter."] == ["Harbor Report", "Outlook"]
    # AND the chunks carry the path where they start, the nearest heading as their title
    chunks = chunk_elements(
        extraction.elements, chunk_size=12, chunk_overlap=0, length=lambda t: len(t.split())
    )
    facility = next(c for c in chunks if "50 million" in c.text)
    assert facility.title == "Credit facility"
    assert facility.headings == ["Harbor Report", "Liquidity", "Credit facility"]
