"""Bytes of one object in, elements out, or a typed DocumentError.

Routing: PDFs read their text layer locally (pypdfium2) and send only the pages without one to
OCR; images go to OCR; every other format goes through unstructured. OCR is Textract for S3
objects and Tesseract for local files (``RAGSTREAM_OCR``), per page where a PDF is mixed.
"""

from __future__ import annotations

import hashlib
import io
from typing import TYPE_CHECKING, Any

from ..budget import UNBOUNDED, Deadline
from ..errors import CorruptDocument, EmptyDocument, OcrUnavailable, TooLarge
from ..model import Element, Extraction, SourceRef
from .detect import Detected, detect
from .limits import check_document, check_pages, check_pixels

if TYPE_CHECKING:
    from ..config import Settings

__all__ = ["detect", "extract", "precheck"]

_IMAGE_KINDS = {"png", "jpeg", "tiff"}


def precheck(data: bytes, ref: SourceRef, settings: Settings) -> Detected:
    """The document's type, once the checks that need no parser have passed (size, emptiness, the
    limits of :mod:`ragstream.extract.limits`); cheap and bounded, so safe outside the sandbox."""
    limit = settings.max_document_bytes
    if len(data) > limit:
        raise TooLarge(
            f"document is {len(data) / 1048576:.1f} MB; the limit is {limit / 1048576:.0f} MB "
            "(RAGSTREAM_MAX_DOCUMENT_MB)"
        )
    if not data or (len(data) < 4096 and not data.strip(b" \t\r\n\x00\xef\xbb\xbf")):
        raise EmptyDocument("file is empty")
    detected = detect(data, ref.name)
    check_document(data, detected.kind, settings)
    return detected


def extract(
    data: bytes,
    ref: SourceRef,
    settings: Settings,
    *,
    textract: Any = None,
    deadline: Deadline = UNBOUNDED,
    ocr_job: str | None = None,
    detected: Detected | None = None,
) -> Extraction:
    """Detect the type of ``data`` and extract its elements; raises DocumentError subclasses.

    An asynchronous OCR job that cannot finish before ``deadline`` raises :class:`~ragstream.errors.Parked`
    with its job id; pass that id back as ``ocr_job`` (same bytes) to resume it. ``detected`` is what
    :func:`precheck` returned, when the caller has run it already (the sandbox does, in its parent).
    """
    if detected is None:
        detected = precheck(data, ref, settings)
    if detected.kind == "pdf":
        result = _extract_pdf(data, ref, settings, _Ocr(ref, settings, textract, deadline, ocr_job, data))
    elif detected.kind in _IMAGE_KINDS:
        result = _extract_image(data, _Ocr(ref, settings, textract, deadline, ocr_job, data), detected)
    else:
        from .unstructured import partition

        elements, meta = partition(detected.kind, data, ref.name, settings)
        pages = [e.page for e in elements if e.page]
        result = Extraction(
            elements=elements,
            content_type=detected.mime,
            engine="unstructured",
            pages=max(pages) if pages and detected.kind in {"pptx", "docx", "odt", "ppt"} else None,
            metadata=meta,
        )
    result.elements = _with_titles(result.elements)
    if not result.elements:
        raise EmptyDocument(f"no text found in this {detected.kind.upper()} document")
    return result


def _with_titles(elements: list[Element]) -> list[Element]:
    """Drop empty elements; give each the nearest preceding Title (sheets keep their own name) and the
    path of headings it lies under.

    A Title with a ``category_depth`` (unstructured's heading level: Markdown, HTML, Word) closes the
    headings at its depth or deeper and opens its own under the rest; a Title without one (PDF, OCR)
    starts a new path of its own.
    """
    out: list[Element] = []
    path: list[tuple[int, str]] = []  # (depth, heading), outermost first
    for element in elements:
        text = element.text.strip()
        if not text:
            continue
        if element.type == "Title":
            depth = element.metadata.get("category_depth")
            if isinstance(depth, int) and not isinstance(depth, bool):
                while path and path[-1][0] >= depth:
                    path.pop()
                path.append((depth, text[:300]))
            else:
                path = [(0, text[:300])]
        title: str | None
        if element.title and element.type != "Title":  # a sheet's own name
            title, headings = element.title, [element.title]
        else:
            headings = [heading for _, heading in path]
            title = element.title or (headings[-1] if headings else None)
        out.append(element.model_copy(update={"text": text, "title": title, "headings": headings}))
    return out


# -- OCR engine ------------------------------------------------------------------------------------


class _Ocr:
    """The OCR engine in effect for one document, created only when a page needs it."""

    def __init__(
        self,
        ref: SourceRef,
        settings: Settings,
        textract: Any,
        deadline: Deadline = UNBOUNDED,
        job_id: str | None = None,
        data: bytes = b"",
    ) -> None:
        mode = settings.ocr
        self.name = ("textract" if ref.bucket else "tesseract") if mode == "auto" else mode
        self.ref = ref
        self.settings = settings
        self.deadline = deadline
        self.job_id = job_id
        self.data = data
        self._client = textract
        self._textract: Any = None

    def detect_s3(self, pages: int) -> list[Element]:
        """The whole object through Textract's asynchronous API (resuming the parked job, if any)."""
        from .textract import job_token

        assert self.ref.bucket is not None
        version = hashlib.sha256(self.data).hexdigest()
        token = job_token(self.ref.bucket, self.ref.key, version=version, etag=self.ref.etag)
        return self.textract.detect_s3(  # type: ignore[no-any-return]
            self.ref.bucket,
            self.ref.key,
            size=len(self.data),
            pages=pages,
            token=token,
            job_id=self.job_id,
            deadline=self.deadline,
        )

    def require(self, what: str) -> None:
        """Fail clearly when OCR is needed and none is available."""
        if self.name == "none":
            raise OcrUnavailable(f"{what} needs OCR and OCR is off (RAGSTREAM_OCR=none)")
        if self.name == "tesseract":
            from .ocr import require_tesseract

            require_tesseract()

    @property
    def textract(self) -> Any:
        if self._textract is None:
            from .textract import TextractOcr, make_client

            client = self._client if self._client is not None else make_client()
            self._textract = TextractOcr(
                client, job_timeout=self.settings.textract_timeout
            )
        return self._textract

    @property
    def languages(self) -> str:
        return self.settings.ocr_languages


# -- PDF -------------------------------------------------------------------------------------------


def _extract_pdf(data: bytes, ref: SourceRef, settings: Settings, ocr: _Ocr) -> Extraction:
    from . import pdf_text

    pdf = pdf_text.open_pdf(data)
    try:
        check_pages(len(pdf), "PDF", settings)
        pages = pdf_text.read_pages(pdf)
        total = len(pages)
        if total == 0:
            raise EmptyDocument("PDF has no pages")
        if settings.pdf_ocr == "always":
            need = [p.number for p in pages]
        elif settings.pdf_ocr == "never":
            need = []
        else:
            need = [p.number for p in pages if p.needs_ocr]
        meta: dict[str, Any] = {}
        text_pages = [p for p in pages if p.elements and p.number not in need]
        if need and ocr.name == "none" and settings.pdf_ocr == "auto" and text_pages:
            meta["pages_without_text"] = need  # the text pages are still worth indexing
            need = []
        ocr_elements: dict[int, list[Element]] = {}
        billed = len(need)
        if need:
            listed = ", ".join(map(str, need[:10])) + ("..." if len(need) > 10 else "")
            ocr.require(f"PDF page(s) {listed}")
            ocr_elements, billed = _ocr_pdf_pages(pdf, data, need, total, ref, ocr, settings)
        elements: list[Element] = []
        for page in pages:
            elements += ocr_elements.get(page.number, []) if page.number in need else page.elements
        try:
            title = (pdf.get_metadata_dict().get("Title") or "").strip()
        except Exception:  # metadata is optional and sometimes broken
            title = ""
        if title:
            meta["pdf_title"] = title
    finally:
        pdf.close()
    if not elements and settings.pdf_ocr == "never":
        raise EmptyDocument("PDF has no text layer and OCR is off (RAGSTREAM_PDF_OCR=never)")
    if not need:
        engine = "pdf_text"
    elif len(need) == total:
        engine = ocr.name
    else:
        engine = f"pdf_text+{ocr.name}"
    return Extraction(
        elements=elements,
        content_type="application/pdf",
        engine=engine,
        pages=total,
        ocr_pages=billed,
        metadata=meta,
    )


def _ocr_pdf_pages(
    pdf: Any, data: bytes, need: list[int], total: int, ref: SourceRef, ocr: _Ocr, settings: Settings
) -> tuple[dict[int, list[Element]], int]:
    """OCR the given 1-based pages; also returns the pages billed.

    Textract: a PDF in S3 with more than one page to OCR goes to the asynchronous API as it is
    (one job, no rendering, no loop of synchronous calls; it is billed for every page, and only
    the pages without text take its text). One page to OCR is rendered to PNG and sent to
    DetectDocumentText. A local file (no S3 object for the asynchronous API) sends each page.
    """
    from . import pdf_text

    out: dict[int, list[Element]] = {}
    scale = pdf_text.OCR_DPI / 72

    def renderable(number: int) -> int:
        """A page to render for OCR: its bitmap must fit the pixel limit."""
        width, height = pdf[number - 1].get_size()
        check_pixels(width * scale, height * scale, f"page {number} at {pdf_text.OCR_DPI} dpi", settings)
        return number

    if ocr.name == "tesseract":
        from .ocr import tesseract_image

        for number in map(renderable, need):
            out[number] = tesseract_image(pdf_text.render_page(pdf, number), number, languages=ocr.languages)
        return out, len(need)
    from .textract import SYNC_MAX_BYTES

    client = ocr.textract
    if len(need) > 1 and ref.bucket:
        wanted = set(need)
        for element in ocr.detect_s3(total):
            if element.page in wanted:
                out.setdefault(element.page, []).append(element)  # type: ignore[arg-type]
        return out, total
    if total == 1 and need == [1] and len(data) <= SYNC_MAX_BYTES:
        out[1] = client.detect_bytes(data, 1, what="PDF")
        return out, 1
    for number in map(renderable, need):
        png = pdf_text.page_png(pdf, number, SYNC_MAX_BYTES)
        out[number] = client.detect_bytes(png, number, what=f"page {number} image")
    return out, len(need)


# -- images ----------------------------------------------------------------------------------------


def _extract_image(data: bytes, ocr: _Ocr, detected: Detected) -> Extraction:
    from PIL import Image, ImageSequence, UnidentifiedImageError

    ref = ocr.ref
    ocr.require("this image")
    settings = ocr.settings
    Image.MAX_IMAGE_PIXELS = settings.max_image_pixels  # Pillow's own guard, for what it decodes
    try:
        image = Image.open(io.BytesIO(data))
        frames = getattr(image, "n_frames", 1)
        check_pages(frames, f"{detected.kind.upper()} image", settings)
        check_pixels(image.width, image.height, f"{detected.kind.upper()} image", settings)
    except Image.DecompressionBombError as exc:  # Pillow's guard, past twice the limit
        raise TooLarge(
            f"{detected.kind.upper()} image has too many pixels ({exc}); the limit is "
            f"{settings.max_image_pixels:,} pixels (RAGSTREAM_MAX_IMAGE_PIXELS)"
        ) from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise CorruptDocument(f"{detected.kind.upper()} image is damaged ({exc})") from None
    elements: list[Element] = []
    try:
        if ocr.name == "tesseract":
            from .ocr import tesseract_image

            for number, frame in enumerate(ImageSequence.Iterator(image), start=1):
                check_pixels(frame.width, frame.height, f"frame {number}", settings)
                elements += tesseract_image(frame.copy(), number, languages=ocr.languages)
        else:
            from .textract import SYNC_MAX_BYTES

            client = ocr.textract
            if frames == 1:
                elements = client.detect_bytes(data, 1, what=f"{detected.kind.upper()} image")
            elif ref.bucket:
                elements = ocr.detect_s3(frames)
            else:
                for number, frame in enumerate(ImageSequence.Iterator(image), start=1):
                    buffer = io.BytesIO()
                    frame.convert("L").save(buffer, format="PNG")
                    if buffer.tell() > SYNC_MAX_BYTES:
                        raise TooLarge(f"TIFF page {number} is over Textract's 10 MB limit")
                    elements += client.detect_bytes(buffer.getvalue(), number, what=f"TIFF page {number}")
    except (OSError, ValueError) as exc:
        raise CorruptDocument(f"{detected.kind.upper()} image could not be decoded ({exc})") from None
    return Extraction(
        elements=elements,
        content_type=detected.mime,
        engine=ocr.name,
        pages=frames,
        ocr_pages=frames,
    )
