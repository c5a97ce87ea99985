"""The bulk text-layer reader gives what the per-rectangle reader gave before it (issue 15).

``tests/data/pdf_text_reference.json`` holds the old reader's output for the shared corpus's PDFs
and two generated table-heavy filings (``tests/data/make_pdf_reference.py`` wrote it with the old
code). "Equivalent" here means:

- exactly the same: the typed error of an unreadable PDF, the page numbers, each page's letter
  count and its which-pages-need-OCR decision (these decide cost and routing);
- exactly the same elements (kinds, paragraph boundaries, headings, text) for every PDF whose text
  is unchanged, and always for the generated filings (their cells never overlap; the reference
  keeps their elements as a count and a sha256 per page);
- elsewhere the old reader asked pdfium for the text *inside each rectangle*, which also returns
  the characters of neighbouring rectangles that touch it ("PERERMISSION", "U1U1", Arabic letters
  twice). The new reader takes each rectangle's own characters, so it may drop those duplicates
  but never adds text: per page its non-space characters are a sub-multiset of the old ones, at
  most 10% of a document's characters go, and the headings stay: nearly every old heading has a
  heading on the same page whose text is the old one with duplicates dropped, and the reverse.
"""

from __future__ import annotations

import json
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from ragstream.extract.pdf_text import read_pages
from tests.data.make_pdf_reference import CORPUS, TABLE_PDFS, read_snapshot, table_pdf

DATA = Path(__file__).resolve().parents[2] / "data"

REFERENCE: dict[str, Any] = json.loads((DATA / "pdf_text_reference.json").read_text(encoding="utf-8"))
GENERATED = {f"generated/{name}" for name, _, _ in TABLE_PDFS}


@cache
def pdf_bytes(name: str) -> bytes:
    kind, _, file = name.partition("/")
    if kind == "generated":
        _, seed, pages = next(t for t in TABLE_PDFS if t[0] == file)
        return table_pdf(seed, pages)
    path = CORPUS / file
    if not path.is_file():
        pytest.skip(f"shared corpus not found at {CORPUS}")
    return path.read_bytes()


def squash(text: str) -> str:
    return "".join(text.split())


def page_text(page: dict[str, Any]) -> str:
    return squash("".join(text for _, text in page["elements"]))


def is_subsequence(short: str, long: str) -> bool:
    rest = iter(long)
    return all(ch in rest for ch in short)


def headings(page: dict[str, Any]) -> list[str]:
    return [squash(text) for kind, text in page["elements"] if kind == "Title"]


def kept(old: list[list[str]], new: list[list[str]]) -> float:
    """The share of ``old`` headings with a same-page ``new`` heading equal to it minus duplicates."""
    matched = total = 0
    for olds, news in zip(old, new, strict=True):
        for heading in olds:
            total += 1
            matched += any(is_subsequence(n, heading) or is_subsequence(heading, n) for n in news)
    return matched / total if total else 1.0


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_reader_matches_reference(name: str) -> None:
    # GIVEN what the old reader gave for this PDF
    want = REFERENCE[name]
    # WHEN the current reader reads the same bytes
    got = read_snapshot(pdf_bytes(name), read_pages, digest=name in GENERATED)
    # THEN errors, pages, letter counts and OCR decisions are exactly the same
    if "error" in want:
        assert got == {"error": want["error"]}
        return
    assert [(p["number"], p["needs_ocr"], p["chars"]) for p in got["pages"]] == [
        (p["number"], p["needs_ocr"], p["chars"]) for p in want["pages"]
    ]
    if name in GENERATED:  # AND the generated filings give exactly the same elements (as digests)
        assert got["pages"] == want["pages"]
        return
    old_text = "".join(page_text(p) for p in want["pages"])
    new_text = "".join(page_text(p) for p in got["pages"])
    if new_text == old_text:
        # AND the same paragraphs, headings and text wherever the text is unchanged
        assert got["pages"] == want["pages"]
        return
    # AND elsewhere only the old reader's duplicates of touching rectangles are gone
    for old, new in zip(want["pages"], got["pages"], strict=True):
        assert not Counter(page_text(new)) - Counter(page_text(old)), f"page {old['number']} gained text"
    assert len(new_text) >= 0.9 * len(old_text)
    old_heads = [headings(p) for p in want["pages"]]
    new_heads = [headings(p) for p in got["pages"]]
    assert kept(old_heads, new_heads) >= 0.9
    assert kept(new_heads, old_heads) >= 0.9
