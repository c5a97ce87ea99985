"""The text layer of PDF pages, read locally with pypdfium2, and the pages that need OCR instead."""

from __future__ import annotations

import ctypes
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache, partial
from itertools import groupby, repeat
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
#: pdfium's size below which a character box is empty (generated characters).
_EPSILON = 0.01


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
    chars = sum(map(str.isalnum, raw))
    garbage = sum(ch == "\ufffd" or "\ue000" <= ch <= "\uf8ff" for ch in raw)
    if garbage > 0.3 * (chars + garbage):
        chars = 0  # glyphs without a Unicode mapping: the text layer is unreadable
    left, bottom, right, top = page.get_bbox()
    width, height = (right - left) or 1.0, (top - bottom) or 1.0
    cover = min(1.0, _image_area(page.raw, (left, bottom, right, top), pdfium.raw) / (width * height))
    has_image = cover > 0.01
    needs_ocr = (chars < MIN_TEXT_CHARS and (has_image or garbage > 0)) or (
        cover >= SCAN_IMAGE_COVER and chars < SCAN_TEXT_CHARS
    )
    result = PageText(number=number, chars=chars, image_cover=cover, needs_ocr=needs_ocr)
    if chars == 0:
        return result
    lines = _text_lines(textpage.raw, raw, left, top, width, height, pdfium.raw)
    result.elements = lines_to_elements(lines, number, source="pdf_text")
    if not result.elements and raw.strip():
        result.elements = [
            Element(text=" ".join(raw.split()), page=number, metadata={"source_engine": "pdf_text"})
        ]
    return result


def _image_area(page: Any, bbox: tuple[float, float, float, float], pdfium_c: Any) -> float:
    """The area of the page's image objects (also inside form XObjects, 3 levels deep), clipped to it."""
    left, bottom, right, top = bbox
    ol, ob, orr, ot = (ctypes.c_float() for _ in range(4))
    area = 0.0
    stack = [(pdfium_c.FPDFPage_CountObjects(page), partial(pdfium_c.FPDFPage_GetObject, page), 0)]
    while stack:
        count, get, level = stack.pop()
        objects = list(map(get, range(max(count, 0))))
        for obj, kind in zip(objects, map(pdfium_c.FPDFPageObj_GetType, objects), strict=True):
            if kind == pdfium_c.FPDF_PAGEOBJ_FORM and level < 2:
                count_form = pdfium_c.FPDFFormObj_CountObjects(obj)
                stack.append((count_form, partial(pdfium_c.FPDFFormObj_GetObject, obj), level + 1))
            elif kind == pdfium_c.FPDF_PAGEOBJ_IMAGE and pdfium_c.FPDFPageObj_GetBounds(obj, ol, ob, orr, ot):
                area += max(0.0, min(orr.value, right) - max(ol.value, left)) * max(
                    0.0, min(ot.value, top) - max(ob.value, bottom)
                )
    return area


def _text_runs(textpage: Any, pdfium_c: Any) -> list[tuple[int, int, float, float, float, float]]:
    """The page's text runs in content order: (first char, last char, l, b, r, t) per text object.

    The same rectangles as pdfium's ``FPDFText_GetRect``: consecutive characters of one text object,
    skipping generated characters and empty boxes. All character boxes and text objects are read in
    two passes that loop in C (``map`` over a ctypes function writing into one array).
    """
    n = pdfium_c.FPDFText_CountChars(textpage)
    if n <= 0:
        return []
    char_box, text_object = _bulk_functions(pdfium_c)
    handle = ctypes.cast(textpage, ctypes.c_void_p).value or 0
    boxes = (ctypes.c_double * (4 * n))()  # per character: left, right, bottom, top
    base, size = ctypes.addressof(boxes), ctypes.sizeof(ctypes.c_double)
    end = base + 4 * size * n
    stride = 4 * size
    ok = list(
        map(
            char_box,
            repeat(handle, n),
            range(n),
            range(base, end, stride),
            range(base + size, end, stride),
            range(base + 2 * size, end, stride),
            range(base + 3 * size, end, stride),
        )
    )
    values = boxes[:]
    lefts, rights, bottoms, tops = values[0::4], values[1::4], values[2::4], values[3::4]
    kept = [  # generated spaces and line breaks have empty boxes
        i
        for i, found, x0, x1, y0, y1 in zip(range(n), ok, lefts, rights, bottoms, tops, strict=True)
        if found and x1 - x0 >= _EPSILON and y1 - y0 >= _EPSILON
    ]
    objects = dict(zip(kept, map(text_object, repeat(handle, len(kept)), kept), strict=True))
    runs = []
    for _, group in groupby(kept, key=objects.__getitem__):
        chars = list(group)
        runs.append(
            (
                chars[0],
                chars[-1],
                min(map(lefts.__getitem__, chars)),
                min(map(bottoms.__getitem__, chars)),
                max(map(rights.__getitem__, chars)),
                max(map(tops.__getitem__, chars)),
            )
        )
    return runs


def _char_texts(textpage: Any, raw: str, pdfium_c: Any) -> list[str]:
    """Each character's text by index: the page text where it maps one to one, else per character."""
    n = pdfium_c.FPDFText_CountChars(textpage)
    unicode = partial(pdfium_c.FPDFText_GetUnicode, textpage)
    if len(raw) != n:  # pdfium left out or added characters in the page text: ask each one
        return [chr(u) if u else "" for u in map(unicode, range(n))]
    chars = list(raw)
    for i, ch in enumerate(chars):
        if ch == "\ufffe":  # the page text's stand-in for a soft hyphen or a character without Unicode
            u = unicode(i)
            chars[i] = chr(u) if u else ""
    return chars


def _text_lines(
    textpage: Any, raw: str, left: float, top: float, width: float, height: float, pdfium_c: Any
) -> list[Line]:
    """Text runs in content order, merged into lines with boxes as page fractions."""
    chars = _char_texts(textpage, raw, pdfium_c)
    loose = pdfium_c.FS_RECTF()
    lines: list[Line] = []
    cur: list[Any] = []  # [text, l, b, r, t, font size, bold]
    for first, last, rl, rb, rr, rt in _text_runs(textpage, pdfium_c):
        text = "".join(chars[first : last + 1])
        if not text.strip():
            continue
        if not text.isascii():  # pdfium keeps characters beyond the BMP as two UTF-16 halves
            text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
        h = max(rt - rb, 0.1)
        if cur:
            overlap = min(cur[4], rt) - max(cur[2], rb)
            same_line = overlap >= 0.5 * min(h, cur[4] - cur[2]) and rl >= cur[3] - 0.5 * h
            if same_line:
                sep = " " if rl - cur[3] > 0.15 * h else ""
                cur[:5] = [cur[0] + sep + text, cur[1], min(cur[2], rb), max(cur[3], rr), max(cur[4], rt)]
                continue
            lines.append(_line(cur, left, top, width, height))
        # the loose box spans the font's ascent to descent: the effective size on the page
        size = 0.0
        if pdfium_c.FPDFText_GetLooseCharBox(textpage, first, loose):
            size = round(loose.top - loose.bottom, 1)
        cur = [text, rl, rb, rr, rt, size, _is_bold(textpage, first, pdfium_c)]
    if cur:
        lines.append(_line(cur, left, top, width, height))
    return lines


@cache
def _bulk_functions(pdfium_c: Any) -> tuple[Callable[..., int], Callable[[int, int], int | None]]:
    """``FPDFText_GetCharBox`` and ``FPDFText_GetTextObject`` taking and giving plain addresses.

    pypdfium2's bindings check a typed pointer on every call; these take ints, so a ``map`` over
    the characters runs without Python-level conversions, and text objects compare as ints.
    """
    ptr = ctypes.c_void_p
    address = ctypes.cast(pdfium_c.FPDFText_GetCharBox, ptr).value or 0
    char_box: Callable[..., int] = ctypes.CFUNCTYPE(ctypes.c_int, ptr, ctypes.c_int, ptr, ptr, ptr, ptr)(
        address
    )
    address = ctypes.cast(pdfium_c.FPDFText_GetTextObject, ptr).value or 0
    text_object: Callable[[int, int], int | None] = ctypes.CFUNCTYPE(ptr, ptr, ctypes.c_int)(address)
    return char_box, text_object


def _is_bold(textpage: Any, index: int, pdfium_c: Any) -> bool:
    if pdfium_c.FPDFText_GetFontWeight(textpage, index) >= 600:
        return True
    name = ctypes.create_string_buffer(128)
    flags = ctypes.c_int()
    pdfium_c.FPDFText_GetFontInfo(textpage, index, name, 128, ctypes.byref(flags))
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
