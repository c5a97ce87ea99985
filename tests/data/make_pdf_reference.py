"""Write ``pdf_text_reference.json``: what the PDF text-layer reader gave before its bulk rewrite.

Not part of the suite. It keeps the reader as it was before issue 15 (one pypdfium2
``get_text_bounded`` call per text rectangle) as :func:`legacy_read_pages`, the one copy of that
code outside git history, and records its output (per page: whether it needs OCR, its letter
count, and its elements' kinds and texts) for every PDF of the shared corpus and for the
table-heavy PDFs that :func:`table_pdf` generates. ``tests/unit/extract/test_pdf_text_reference.py``
checks that today's reader gives the same; ``bench/pdf_text.py`` times both readers.

    .venv/bin/python tests/data/make_pdf_reference.py [--corpus ../shared/corpus]
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import io
import json
import random
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

from ragstream.errors import DocumentError  # noqa: E402
from ragstream.extract.ocr import Line, lines_to_elements  # noqa: E402
from ragstream.extract.pdf_text import (  # noqa: E402
    MIN_TEXT_CHARS,
    SCAN_IMAGE_COVER,
    SCAN_TEXT_CHARS,
    PageText,
    open_pdf,
)
from ragstream.model import Element  # noqa: E402

REFERENCE = Path(__file__).with_name("pdf_text_reference.json")
CORPUS = ROOT.parent / "shared" / "corpus"
#: (name, seed, pages): the generated table-heavy filings. Deterministic bytes (reportlab invariant).
#: Seeds below 100 lay out tables with reportlab's platypus (~600 cells a page); seeds from 100 draw
#: every cell as its own text object on a dense grid (~2,200 cells a page, like the densest filings).
TABLE_PDFS = [("filing-a.pdf", 1, 50), ("filing-b.pdf", 2, 30), ("filing-dense.pdf", 101, 50)]


# -- the table-heavy PDFs: quarterly-filing-like pages, many small table cells -----------------------


def table_pdf(seed: int, pages: int) -> bytes:
    """A born-digital 'quarterly filing': per page a heading, a paragraph and dense numeric tables."""
    if seed >= 100:
        return dense_table_pdf(seed, pages)
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import letter
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import inch
    from reportlab.platypus import PageBreak, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    rng = random.Random(seed)
    styles = getSampleStyleSheet()
    segments = ["Cloud", "Devices", "Services", "Licensing", "Hardware", "Advertising", "Other"]
    quarters = ["Q1 2025", "Q2 2025", "Q3 2025", "Q4 2025", "Q1 2026", "Q2 2026", "Q3 2026"]
    words = (  # noqa: SIM905
        "revenue increased primarily driven by growth in subscriptions offset in part by lower "
        "hardware sales and currency movements operating income margin expenses research development"
    ).split()
    story: list[Any] = []
    style = TableStyle(
        [
            ("FONT", (0, 0), (-1, -1), "Helvetica", 6.5),
            ("FONT", (0, 0), (-1, 0), "Helvetica-Bold", 6.5),
            ("ALIGN", (1, 0), (-1, -1), "RIGHT"),
            ("LINEBELOW", (0, 0), (-1, 0), 0.5, colors.black),
            ("TOPPADDING", (0, 0), (-1, -1), 0.5),
            ("BOTTOMPADDING", (0, 0), (-1, -1), 0.5),
        ]
    )
    for page in range(pages):
        story.append(
            Paragraph(f"Note {page + 1}. Segment results {rng.choice(segments)}", styles["Heading2"])
        )
        sentence = " ".join(rng.choice(words) for _ in range(45)).capitalize() + "."
        story.append(Paragraph(sentence, styles["BodyText"]))
        story.append(Spacer(1, 4))
        for _ in range(2):
            header = ["(in millions)", *quarters, "Change", "%"]
            rows = [header]
            for r in range(28):
                values = [rng.randint(-9_999, 99_999) for _ in quarters]
                change = values[-1] - values[0]
                pct = 100.0 * change / (abs(values[0]) or 1)
                rows.append(
                    [f"{rng.choice(segments)} {r + 1}"]
                    + [f"({-v:,})" if v < 0 else f"{v:,}" for v in values]
                    + [f"{change:,}", f"{pct:.1f}%"]
                )
            story.append(Table(rows, style=style, colWidths=[1.1 * inch] + [0.62 * inch] * 9))
            story.append(Spacer(1, 6))
        if page < pages - 1:
            story.append(PageBreak())
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(
        buffer, pagesize=letter, invariant=1, leftMargin=36, rightMargin=36, topMargin=36, bottomMargin=36
    )
    doc.build(story)
    return buffer.getvalue()


def dense_table_pdf(seed: int, pages: int) -> bytes:
    """Pages of a bold heading over a 5-point grid of 110 rows by 20 cells, each its own text object."""
    from reportlab.lib.pagesizes import letter
    from reportlab.pdfgen.canvas import Canvas

    rng = random.Random(seed)
    buffer = io.BytesIO()
    canvas = Canvas(buffer, pagesize=letter, invariant=1)
    for page in range(pages):
        canvas.setFont("Helvetica-Bold", 12)
        canvas.drawString(36, 756, f"Schedule {page + 1}. Consolidated segment detail")
        for row in range(110):
            y = 740 - row * 6.4
            canvas.setFont("Helvetica-Bold" if row % 10 == 0 else "Helvetica", 5)
            canvas.drawString(36, y, f"Line {row + 1}")
            for col in range(19):
                value = rng.randint(-99_999, 999_999)
                canvas.drawRightString(92 + col * 27.5, y, f"({-value:,})" if value < 0 else f"{value:,}")
        canvas.showPage()
    canvas.save()
    return buffer.getvalue()


# -- the reader as it was (per-rectangle get_text_bounded) -------------------------------------------


def legacy_read_pages(pdf: Any) -> list[PageText]:
    """Read each page's text layer into paragraphs and decide which pages need OCR (the old way)."""
    import pypdfium2 as pdfium

    pages = []
    for index in range(len(pdf)):
        try:
            page = pdf[index]
            pages.append(_legacy_read_page(page, index + 1, pdfium))
        except pdfium.PdfiumError:
            pages.append(PageText(number=index + 1, needs_ocr=True))
    return pages


def _legacy_read_page(page: Any, number: int, pdfium: Any) -> PageText:
    textpage = page.get_textpage()
    raw = textpage.get_text_range()
    chars = sum(ch.isalnum() for ch in raw)
    garbage = sum(ch == "\ufffd" or "\ue000" <= ch <= "\uf8ff" for ch in raw)
    if garbage > 0.3 * (chars + garbage):
        chars = 0
    left, bottom, right, top = page.get_bbox()
    width, height = (right - left) or 1.0, (top - bottom) or 1.0
    cover = 0.0
    for obj in page.get_objects(filter=[pdfium.raw.FPDF_PAGEOBJ_IMAGE], max_depth=3):
        try:
            ol, ob, orr, ot = obj.get_bounds()
        except pdfium.PdfiumError:
            continue
        cover += max(0.0, min(orr, right) - max(ol, left)) * max(0.0, min(ot, top) - max(ob, bottom))
    cover = min(1.0, cover / (width * height))
    has_image = cover > 0.01
    needs_ocr = (chars < MIN_TEXT_CHARS and (has_image or garbage > 0)) or (
        cover >= SCAN_IMAGE_COVER and chars < SCAN_TEXT_CHARS
    )
    result = PageText(number=number, chars=chars, image_cover=cover, needs_ocr=needs_ocr)
    if chars == 0:
        return result
    lines = _legacy_text_lines(textpage, left, top, width, height)
    result.elements = lines_to_elements(lines, number, source="pdf_text")
    if not result.elements and raw.strip():
        result.elements = [
            Element(text=" ".join(raw.split()), page=number, metadata={"source_engine": "pdf_text"})
        ]
    return result


def _legacy_text_lines(textpage: Any, left: float, top: float, width: float, height: float) -> list[Line]:
    import pypdfium2.raw as pdfium_c

    lines: list[Line] = []
    cur: list[Any] = []  # [text, l, b, r, t, font size, bold]
    for i in range(textpage.count_rects()):
        rl, rb, rr, rt = textpage.get_rect(i)
        text = textpage.get_text_bounded(rl, rb, rr, rt)
        if not text.strip():
            continue
        h = max(rt - rb, 0.1)
        index = textpage.get_index(rl + min(h / 2, (rr - rl) / 2), (rb + rt) / 2, h / 2, h / 2)
        found = index is not None and index >= 0
        size = 0.0
        if found:
            _, low, _, high = textpage.get_charbox(index, loose=True)
            size = round(high - low, 1)
        bold = found and _legacy_is_bold(textpage, index, pdfium_c)
        if cur:
            overlap = min(cur[4], rt) - max(cur[2], rb)
            same_line = overlap >= 0.5 * min(h, cur[4] - cur[2]) and rl >= cur[3] - 0.5 * h
            if same_line:
                cur_size, cur_bold = cur[5], cur[6]
                sep = " " if rl - cur[3] > 0.15 * h else ""
                cur = [cur[0] + sep + text, cur[1], min(cur[2], rb), max(cur[3], rr), max(cur[4], rt)]
                cur += [cur_size, cur_bold]
                continue
            lines.append(_legacy_line(cur, left, top, width, height))
        cur = [text, rl, rb, rr, rt, size, bold]
    if cur:
        lines.append(_legacy_line(cur, left, top, width, height))
    return lines


def _legacy_is_bold(textpage: Any, index: int, pdfium_c: Any) -> bool:
    if pdfium_c.FPDFText_GetFontWeight(textpage.raw, index) >= 600:
        return True
    name = ctypes.create_string_buffer(128)
    flags = ctypes.c_int()
    pdfium_c.FPDFText_GetFontInfo(textpage.raw, index, name, 128, ctypes.byref(flags))
    return b"bold" in name.value.lower() or bool(flags.value & (1 << 18))


def _legacy_line(cur: list[Any], left: float, top: float, width: float, height: float) -> Line:
    text, rl, rb, rr, rt, size, bold = cur
    return Line(
        text=" ".join(str(text).split()),
        left=(rl - left) / width,
        top=(top - rt) / height,
        width=(rr - rl) / width,
        height=(rt - rb) / height,
        size=float(size) or None,
        bold=bool(bold),
    )


# -- the snapshot ------------------------------------------------------------------------------------


def snapshot(pages: list[PageText], *, digest: bool = False) -> list[dict[str, Any]]:
    """What the comparison looks at: per page, OCR decision, letter count and elements.

    With ``digest`` (the generated filings, which must match exactly) the elements are kept as their
    count and a sha256 of their kinds and texts, which keeps the reference file small.
    """
    out = []
    for p in pages:
        elements = [[e.type, e.text] for e in p.elements]
        page: dict[str, Any] = {"number": p.number, "needs_ocr": p.needs_ocr, "chars": p.chars}
        if digest:
            page["n_elements"] = len(elements)
            page["elements_sha256"] = hashlib.sha256(
                json.dumps(elements, ensure_ascii=False).encode()
            ).hexdigest()
        else:
            page["elements"] = elements
        out.append(page)
    return out


def read_snapshot(data: bytes, reader: Any, *, digest: bool = False) -> dict[str, Any]:
    """Open and read one PDF with ``reader``; a typed error is recorded by its class name."""
    try:
        pdf = open_pdf(data)
    except DocumentError as exc:
        return {"error": type(exc).__name__}
    try:
        return {"pages": snapshot(reader(pdf), digest=digest)}
    finally:
        pdf.close()


def reference_pdfs(corpus: Path) -> Iterator[tuple[str, bytes]]:
    """Every PDF the reference covers: the corpus's (by file name) and the generated ones."""
    for path in sorted(corpus.glob("*.pdf")):
        yield f"corpus/{path.name}", path.read_bytes()
    for name, seed, pages in TABLE_PDFS:
        yield f"generated/{name}", table_pdf(seed, pages)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    args = parser.parse_args()
    out: dict[str, Any] = {}
    for name, data in reference_pdfs(args.corpus):
        entry = read_snapshot(data, legacy_read_pages, digest=name.startswith("generated/"))
        entry["sha256"] = hashlib.sha256(data).hexdigest()
        out[name] = entry
        print(name, entry.get("error") or f"{len(entry['pages'])} pages", file=sys.stderr)
    REFERENCE.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {REFERENCE} ({len(out)} PDFs)", file=sys.stderr)


if __name__ == "__main__":
    main()
