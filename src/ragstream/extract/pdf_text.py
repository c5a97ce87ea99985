"""The text layer of PDF pages, read locally with pypdfium2, and the pages that need OCR instead."""

from __future__ import annotations

import ctypes
import io
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import CorruptDocument, EncryptedDocument
from ..model import Element
from .ocr import Line, lines_to_elements

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = ["PageText", "open_pdf", "page_png", "read_pages", "render_page"]

#: A page with fewer letters and digits than this has no usable text layer.
MIN_TEXT_CHARS = 32
#: A page this much covered by images, with less text than SCAN_TEXT_CHARS, is a scan.
SCAN_IMAGE_COVER = 0.8
SCAN_TEXT_CHARS = 100
OCR_DPI = 200


@dataclass
class PageText:
    """What the text layer of one page gave, and whether the page needs OCR."""

    number: int  # 1-based
    elements: list[Element] = field(default_factory=list)
    chars: int = 0  # letters and digits in the text layer
    image_cover: float = 0.0
    needs_ocr: bool = False


def open_pdf(data: bytes) -> Any:
    """Open a PDF with pypdfium2; encrypted and damaged files become typed errors."""
    import pypdfium2 as pdfium

    try:
        return pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        code = getattr(exc, "err_code", None)
        if code == pdfium.raw.FPDF_ERR_PASSWORD:
            raise EncryptedDocument(
                "PDF is password-protected: remove the password and upload again"
            ) from None
        if code == pdfium.raw.FPDF_ERR_SECURITY:
            raise EncryptedDocument("PDF uses an unsupported security (DRM) handler") from None
        raise CorruptDocument("PDF is damaged and cannot be opened") from None


def read_pages(pdf: Any) -> list[PageText]:
    """Read each page's text layer into paragraphs and decide which pages need OCR."""
    import pypdfium2 as pdfium

    pages = []
    for index in range(len(pdf)):
        try:
            page = pdf[index]
            pages.append(_read_page(page, index + 1, pdfium))
        except pdfium.PdfiumError:
            # A page pdfium cannot parse: OCR of its rendering is the only chance left.
            pages.append(PageText(number=index + 1, needs_ocr=True))
    return pages


def _read_page(page: Any, number: int, pdfium: Any) -> PageText:
    textpage = page.get_textpage()
    raw = textpage.get_text_range()
    chars = sum(ch.isalnum() for ch in raw)
    garbage = sum(ch == "\ufffd" or "\ue000" <= ch <= "\uf8ff" for ch in raw)
    if garbage > 0.3 * (chars + garbage):
        chars = 0  # glyphs without a Unicode mapping: the text layer is unreadable
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
    lines = _text_lines(textpage, left, top, width, height)
    result.elements = lines_to_elements(lines, number, source="pdf_text")
    if not result.elements and raw.strip():
        result.elements = [
            Element(text=" ".join(raw.split()), page=number, metadata={"source_engine": "pdf_text"})
        ]
    return result


def _text_lines(textpage: Any, left: float, top: float, width: float, height: float) -> list[Line]:
    """Text rectangles in content order, merged into lines with boxes as page fractions."""
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
        if found:  # the loose box spans the font's ascent to descent: the effective size on the page
            _, low, _, high = textpage.get_charbox(index, loose=True)
            size = round(high - low, 1)
        bold = found and _is_bold(textpage, index, pdfium_c)
        if cur:
            overlap = min(cur[4], rt) - max(cur[2], rb)
            same_line = overlap >= 0.5 * min(h, cur[4] - cur[2]) and rl >= cur[3] - 0.5 * h
            if same_line:
                cur_size, cur_bold = cur[5], cur[6]
                sep = " " if rl - cur[3] > 0.15 * h else ""
                cur = [cur[0] + sep + text, cur[1], min(cur[2], rb), max(cur[3], rr), max(cur[4], rt)]
                cur += [cur_size, cur_bold]
                continue
            lines.append(_line(cur, left, top, width, height))
        cur = [text, rl, rb, rr, rt, size, bold]
    if cur:
        lines.append(_line(cur, left, top, width, height))
    return lines


def _is_bold(textpage: Any, index: int, pdfium_c: Any) -> bool:
    if pdfium_c.FPDFText_GetFontWeight(textpage.raw, index) >= 600:
        return True
    name = ctypes.create_string_buffer(128)
    flags = ctypes.c_int()
    pdfium_c.FPDFText_GetFontInfo(textpage.raw, index, name, 128, ctypes.byref(flags))
    return b"bold" in name.value.lower() or bool(flags.value & (1 << 18))  # ForceBold


def _line(cur: list[Any], left: float, top: float, width: float, height: float) -> Line:
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


def render_page(pdf: Any, number: int, dpi: int = OCR_DPI) -> Image:
    """Render a 1-based page to a greyscale image for OCR."""
    import pypdfium2 as pdfium

    try:
        bitmap = pdf[number - 1].render(scale=dpi / 72, grayscale=True)
        return bitmap.to_pil()
    except pdfium.PdfiumError as exc:
        raise CorruptDocument(f"PDF page {number} cannot be rendered for OCR ({exc})") from None


def page_png(pdf: Any, number: int, max_bytes: int, dpi: int = OCR_DPI) -> bytes:
    """A page as PNG (or JPEG when PNG would exceed max_bytes) for Textract's synchronous API."""
    image = render_page(pdf, number, dpi)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    if buffer.tell() <= max_bytes:
        return buffer.getvalue()
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()
