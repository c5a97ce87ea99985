"""OCR lines into reading order, and Tesseract for images and scanned pages when there is no AWS.

The reading-order assembly is shared by Textract, Tesseract and the PDF text layer: lines with
boxes (fractions of the page, top-left origin) in, paragraphs as Elements out.
"""

from __future__ import annotations

import itertools
import shutil
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import CorruptDocument, OcrUnavailable
from ..model import Element

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = ["Line", "lines_to_elements", "order_lines", "tesseract_available", "tesseract_image"]

_TITLE_MAX_WORDS = 12


@dataclass(frozen=True)
class Line:
    """One line of text with its box, as fractions of the page (0..1, origin top left)."""

    text: str
    left: float
    top: float
    width: float
    height: float
    block: int | None = None  # a paragraph id given by the engine (Tesseract), if any
    size: float | None = None  # font size in points, where known (PDF text layer)
    bold: bool = False

    @property
    def right(self) -> float:
        return self.left + self.width

    @property
    def bottom(self) -> float:
        return self.top + self.height


def order_lines(lines: Sequence[Line]) -> list[Line]:
    """Sort lines into reading order: top to bottom, and column by column where a page has two.

    Lines that lie wholly in the left or the right half are column lines; a full-width line
    (a heading, a figure caption across both columns) closes the band of columns above it.
    """
    rows = sorted(lines, key=lambda ln: (round(ln.top, 3), ln.left))
    left = [ln for ln in rows if ln.right <= 0.55]
    right = [ln for ln in rows if ln.left >= 0.45]
    if len(left) < 3 or len(right) < 3:
        return rows
    ordered: list[Line] = []
    band_left: list[Line] = []
    band_right: list[Line] = []
    for ln in rows:
        if ln.right <= 0.55:
            band_left.append(ln)
        elif ln.left >= 0.45:
            band_right.append(ln)
        else:
            ordered += band_left + band_right + [ln]
            band_left, band_right = [], []
    return ordered + band_left + band_right


def lines_to_elements(lines: Iterable[Line], page: int, *, source: str) -> list[Element]:
    """Group ordered lines into paragraphs (by engine block, vertical gaps and column jumps)."""
    items = [ln for ln in lines if ln.text.strip()]
    if not items:
        return []
    median_h = statistics.median(ln.height for ln in items) or 0.01
    sizes = [ln.size for ln in items if ln.size]
    median_size = statistics.median(sizes) if sizes else None
    paragraphs: list[list[Line]] = [[items[0]]]
    for prev, ln in itertools.pairwise(items):
        gap = ln.top - prev.bottom
        if ln.block is not None and prev.block is not None:  # the engine knows its paragraphs
            if ln.block != prev.block:
                paragraphs.append([ln])
            else:
                paragraphs[-1].append(ln)
            continue
        jumped = ln.top < prev.top - median_h / 2  # went back up: next column
        if ln.size and prev.size:
            size_change = abs(ln.size - prev.size) > 0.1 * max(ln.size, prev.size) or ln.bold != prev.bold
        else:
            size_change = abs(ln.height - prev.height) > 0.3 * max(ln.height, prev.height)
        if jumped or gap > 0.8 * median_h or size_change:
            paragraphs.append([ln])
        else:
            paragraphs[-1].append(ln)
    elements = []
    for para in paragraphs:
        text = _join_lines(ln.text for ln in para)
        if not text:
            continue
        if median_size and para[0].size:
            relative = para[0].size / median_size
        else:
            relative = statistics.mean(ln.height for ln in para) / median_h
        heading = _is_heading(text, len(para), relative, all(ln.bold for ln in para))
        kind = "Title" if heading else "NarrativeText"
        elements.append(Element(text=text, type=kind, page=page, metadata={"source_engine": source}))
    return elements


def _join_lines(texts: Iterable[str]) -> str:
    out = ""
    for raw in texts:
        text = " ".join(raw.split())
        if not text:
            continue
        if out.endswith("-") and text[:1].islower():
            out = out[:-1] + text
        else:
            out = f"{out} {text}" if out else text
    return out


def _is_heading(text: str, n_lines: int, relative: float, bold: bool) -> bool:
    words = text.split()
    return (
        n_lines <= 2
        and 0 < len(words) <= _TITLE_MAX_WORDS
        and (relative >= 1.15 or (bold and relative >= 0.95))
        and not text.endswith((".", ",", ";", ":"))
        and sum(c.isalpha() for c in text) >= 0.5 * len(text.replace(" ", ""))
    )


# -- Tesseract -------------------------------------------------------------------------------------


def tesseract_available() -> bool:
    """True when the tesseract binary and pytesseract are both installed."""
    if shutil.which("tesseract") is None:
        return False
    try:
        import pytesseract  # noqa: F401
    except ImportError:
        return False
    return True


def require_tesseract() -> None:
    """Raise OcrUnavailable with what to do when Tesseract cannot run here."""
    if not tesseract_available():
        raise OcrUnavailable(
            "this document needs OCR and Tesseract is not installed: install it "
            "(Debian: apt-get install tesseract-ocr; pip: pytesseract), or set RAGSTREAM_OCR=textract"
        )


def tesseract_image(
    image: Image, page: int, *, languages: str = "eng", timeout: float = 120
) -> list[Element]:
    """OCR one page image with Tesseract; paragraphs of its layout analysis become elements."""
    require_tesseract()
    import pytesseract

    if image.mode not in {"RGB", "L", "1"}:
        image = image.convert("RGB")
    try:
        data = pytesseract.image_to_data(
            image, lang=languages, output_type=pytesseract.Output.DICT, timeout=timeout
        )
    except RuntimeError as exc:  # pytesseract's timeout
        raise CorruptDocument(f"OCR of page {page} took longer than {timeout:.0f} s") from exc
    except pytesseract.TesseractError as exc:
        raise OcrUnavailable(f"Tesseract failed on page {page}: {str(exc)[:200]}") from None
    width, height = image.size
    words: dict[tuple[int, int, int], list[int]] = {}
    for i, word in enumerate(data["text"]):
        if str(word).strip() and float(data["conf"][i]) >= 0:
            key = (data["block_num"][i], data["par_num"][i], data["line_num"][i])
            words.setdefault(key, []).append(i)
    lines = []
    for (block, par, _), idx in words.items():  # dict order = Tesseract's reading order
        left = min(data["left"][i] for i in idx)
        top = min(data["top"][i] for i in idx)
        right = max(data["left"][i] + data["width"][i] for i in idx)
        bottom = max(data["top"][i] + data["height"][i] for i in idx)
        lines.append(
            Line(
                text=" ".join(str(data["text"][i]) for i in idx),
                left=left / width,
                top=top / height,
                width=(right - left) / width,
                height=(bottom - top) / height,
                block=block * 1000 + par,
            )
        )
    return lines_to_elements(lines, page, source="tesseract")
