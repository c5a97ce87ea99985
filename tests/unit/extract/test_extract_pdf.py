"""PDFs: the local text layer, which pages go to OCR in each mode, Textract and Tesseract routing."""

from __future__ import annotations

import io
import shutil
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber
from PIL import Image, ImageDraw, ImageFont

from ragstream.config import Settings
from ragstream.errors import CorruptDocument, EmptyDocument, EncryptedDocument, OcrUnavailable
from ragstream.extract import extract
from ragstream.extract import textract as textract_mod
from ragstream.model import SourceRef

needs_tesseract = pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract-ocr not installed")


# -- a tiny PDF writer: text pages (Helvetica) and scanned pages (a JPEG covering the page) -------


def scan_jpeg(lines: list[str], size: tuple[int, int] = (1275, 1650)) -> bytes:
    """A 150 dpi letter-size 'scan' with large black text."""
    image = Image.new("L", size, 255)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=48)
    for i, line in enumerate(lines):
        draw.text((100, 150 + i * 90), line, fill=0, font=font)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def make_pdf(pages: list[str | bytes]) -> bytes:
    """Each page is text (a str, lines split by newline) or a scan (JPEG bytes)."""
    objects: list[bytes] = []

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    catalog = add(b"")  # filled below
    pages_id = add(b"")
    font = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    bold = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold >>")
    kids = []
    for page in pages:
        if isinstance(page, str):
            ops = []
            for i, line in enumerate(page.split("\n")):
                escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
                name, size = (b"/F2", 20) if line.startswith("# ") else (b"/F1", 11)
                text = escaped.removeprefix("# ").encode("latin-1")
                ops.append(b"BT %s %d Tf 72 %d Td (%s) Tj ET" % (name, size, 720 - 16 * i, text))
            stream = b"\n".join(ops)
            resources = b"<< /Font << /F1 %d 0 R /F2 %d 0 R >> >>" % (font, bold)
        else:
            width, height = Image.open(io.BytesIO(page)).size
            image = add(
                b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray "
                b"/BitsPerComponent 8 /Filter /DCTDecode /Length %d >>\nstream\n%s\nendstream"
                % (width, height, len(page), page)
            )
            stream = b"q 612 0 0 792 0 0 cm /Im1 Do Q"
            resources = b"<< /XObject << /Im1 %d 0 R >> >>" % image
        content = add(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
        kids.append(
            add(
                b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 612 792] /Resources %s /Contents %d 0 R >>"
                % (pages_id, resources, content)
            )
        )
    objects[catalog - 1] = b"<< /Type /Catalog /Pages %d 0 R >>" % pages_id
    objects[pages_id - 1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (
        b" ".join(b"%d 0 R" % k for k in kids),
        len(kids),
    )
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n%s\nendobj\n" % (number, body))
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(
        b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, catalog, xref)
    )
    return out.getvalue()


TEXT_PAGE = (
    "# Chapter {n}\n"
    "This born-digital page number {n} has a real text layer that the extractor reads.\n"
    "It was written for the ragstream tests and needs no optical character recognition."
)


def text_pages(count: int) -> list[str | bytes]:
    return [TEXT_PAGE.format(n=n) for n in range(1, count + 1)]


def textract_client() -> Any:
    return boto3.client("textract", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")


def line_blocks(page: int | None, texts: list[str]) -> list[dict[str, Any]]:
    """PAGE, LINE and WORD blocks as Textract returns them (page given for async responses)."""
    blocks: list[dict[str, Any]] = [{"BlockType": "PAGE", "Id": f"p{page}"}]
    for i, text in enumerate(texts):
        box = {"Width": 0.6, "Height": 0.02, "Left": 0.1, "Top": 0.1 + i * 0.03}
        line = {"BlockType": "LINE", "Id": f"l{page}-{i}", "Text": text, "Confidence": 99.0,
                "Geometry": {"BoundingBox": box}}  # fmt: skip
        words = [
            {"BlockType": "WORD", "Id": f"w{page}-{i}-{j}", "Text": w, "Geometry": {"BoundingBox": box}}
            for j, w in enumerate(text.split())
        ]
        if page is not None:
            line["Page"] = page
            for w in words:
                w["Page"] = page
        blocks += [line, *words]
    return blocks


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr(textract_mod, "_sleep", slept.append)
    return slept


def s3_ref(key: str = "docs/report.pdf") -> SourceRef:
    return SourceRef(source=f"s3://bucket/{key}", key=key, bucket="bucket")


def local_ref(name: str = "report.pdf") -> SourceRef:
    return SourceRef(source=f"file:///tmp/{name}", key=name)


# -- text layer ------------------------------------------------------------------------------------


def test_born_digital_pdf_reads_pages_titles_and_sends_nothing_to_textract() -> None:
    # GIVEN a 3-page born-digital PDF in S3 and a Textract client that would fail on any call
    data = make_pdf(text_pages(3))
    client = textract_client()
    with Stubber(client) as stubber:  # no responses queued: any call raises
        # WHEN
        result = extract(data, s3_ref(), Settings(), textract=client)
        stubber.assert_no_pending_responses()
    # THEN
    assert result.engine == "pdf_text"
    assert (result.pages, result.ocr_pages) == (3, 0)
    assert [e.page for e in result.elements if e.type == "Title"] == [1, 2, 3]
    body = [e for e in result.elements if e.type != "Title"]
    assert body[1].page == 2 and body[1].title == "Chapter 2"
    assert "born-digital page number 2" in body[1].text


def test_blank_pages_cost_no_ocr() -> None:
    data = make_pdf([TEXT_PAGE.format(n=1), "", TEXT_PAGE.format(n=3)])
    result = extract(data, s3_ref(), Settings(), textract=object())
    assert (result.engine, result.ocr_pages) == ("pdf_text", 0)
    assert {e.page for e in result.elements} == {1, 3}


def test_encrypted_and_corrupt_pdfs_are_typed() -> None:
    with pytest.raises(CorruptDocument):
        extract(b"%PDF-1.4\n1 0 obj << garbage", local_ref(), Settings())
    with pytest.raises(CorruptDocument, match="not a PDF"):
        extract(b"just some text, named like a pdf", local_ref(), Settings())
    corpus_pdf = Path(__file__).resolve().parents[4] / "shared" / "corpus" / "password.pdf"
    if not corpus_pdf.is_file():
        pytest.skip("shared corpus not present")
    data = corpus_pdf.read_bytes()
    with pytest.raises(EncryptedDocument, match="password-protected"):
        extract(data, local_ref("password.pdf"), Settings())


# -- auto mode: only the pages that need it --------------------------------------------------------


def test_auto_mode_sends_only_the_scanned_page_to_textract() -> None:
    # GIVEN page 2 of 3 is a scan
    data = make_pdf([TEXT_PAGE.format(n=1), scan_jpeg(["SCANNED PAGE TWO"]), TEXT_PAGE.format(n=3)])
    client = textract_client()
    with Stubber(client) as stubber:
        stubber.add_response(
            "detect_document_text",
            {
                "DocumentMetadata": {"Pages": 1},
                "Blocks": line_blocks(None, ["Scanned page two", "second line"]),
            },
            {"Document": {"Bytes": ANY}},
        )
        # WHEN
        result = extract(data, s3_ref(), Settings(), textract=client)
        stubber.assert_no_pending_responses()  # exactly one DetectDocumentText call
    # THEN
    assert result.engine == "pdf_text+textract"
    assert (result.pages, result.ocr_pages) == (3, 1)
    ocr = [e for e in result.elements if e.metadata.get("source_engine") == "textract"]
    assert [e.page for e in ocr] == [2]
    assert ocr[0].text == "Scanned page two second line"
    assert [e.page for e in result.elements] == sorted(e.page for e in result.elements)  # page order kept


def test_sent_page_is_a_rendered_png_of_that_page() -> None:
    data = make_pdf([TEXT_PAGE.format(n=1), scan_jpeg(["PAGE TWO"])])
    sent: list[bytes] = []

    class Recorder:
        def detect_document_text(self, **params: Any) -> dict[str, Any]:
            sent.append(params["Document"]["Bytes"])
            return {"Blocks": line_blocks(None, ["PAGE TWO"])}

    result = extract(data, local_ref(), Settings(ocr="textract"), textract=Recorder())
    assert len(sent) == 1 and sent[0].startswith(b"\x89PNG")
    assert Image.open(io.BytesIO(sent[0])).size[1] > 2000  # 200 dpi of a letter page
    assert result.ocr_pages == 1


def test_fully_scanned_multipage_pdf_in_s3_uses_one_async_job() -> None:
    # GIVEN a 3-page scan in S3
    data = make_pdf([scan_jpeg([f"PAGE {n}"]) for n in (1, 2, 3)])
    client = textract_client()
    with Stubber(client) as stubber:
        stubber.add_response(
            "start_document_text_detection",
            {"JobId": "job-1"},
            {
                "DocumentLocation": {"S3Object": {"Bucket": "bucket", "Name": "scans/book.pdf"}},
                "ClientRequestToken": ANY,
            },
        )
        stubber.add_response(
            "get_document_text_detection",
            {"JobStatus": "IN_PROGRESS"},
            {"JobId": "job-1", "MaxResults": 1000},
        )
        stubber.add_response(
            "get_document_text_detection",
            {
                "JobStatus": "SUCCEEDED",
                "DocumentMetadata": {"Pages": 3},
                "Blocks": line_blocks(1, ["Page one text"]) + line_blocks(2, ["Page two text"]),
                "NextToken": "t2",
            },
            {"JobId": "job-1", "MaxResults": 1000},
        )
        stubber.add_response(
            "get_document_text_detection",
            {
                "JobStatus": "SUCCEEDED",
                "DocumentMetadata": {"Pages": 3},
                "Blocks": line_blocks(3, ["Page three text"]),
            },
            {"JobId": "job-1", "MaxResults": 1000, "NextToken": "t2"},
        )
        # WHEN
        result = extract(data, s3_ref("scans/book.pdf"), Settings(), textract=client)
        stubber.assert_no_pending_responses()
    # THEN every page, from both result pages, in order
    assert result.engine == "textract"
    assert (result.pages, result.ocr_pages) == (3, 3)
    assert [(e.page, e.text) for e in result.elements] == [
        (1, "Page one text"),
        (2, "Page two text"),
        (3, "Page three text"),
    ]


def test_pdf_ocr_never_and_always() -> None:
    mixed = make_pdf([TEXT_PAGE.format(n=1), scan_jpeg(["SCAN"])])
    never = extract(mixed, s3_ref(), Settings(pdf_ocr="never"), textract=object())
    assert (never.engine, never.ocr_pages, {e.page for e in never.elements}) == ("pdf_text", 0, {1})
    with pytest.raises(EmptyDocument, match="RAGSTREAM_PDF_OCR=never"):
        extract(make_pdf([scan_jpeg(["SCAN"])]), s3_ref(), Settings(pdf_ocr="never"))

    calls: list[int] = []

    class Counter:
        def detect_document_text(self, **params: Any) -> dict[str, Any]:
            calls.append(1)
            return {"Blocks": line_blocks(None, [f"ocr {len(calls)}"])}

    always = extract(make_pdf(text_pages(2)), local_ref(), Settings(pdf_ocr="always", ocr="textract"),
                     textract=Counter())  # fmt: skip
    assert (always.engine, always.ocr_pages, len(calls)) == ("textract", 2, 2)


def test_ocr_none_keeps_text_pages_and_fails_clearly_without_any() -> None:
    mixed = make_pdf([TEXT_PAGE.format(n=1), scan_jpeg(["SCAN"])])
    result = extract(mixed, local_ref(), Settings(ocr="none"))
    assert result.metadata["pages_without_text"] == [2]
    with pytest.raises(OcrUnavailable, match="RAGSTREAM_OCR=none"):
        extract(make_pdf([scan_jpeg(["SCAN"])]), local_ref(), Settings(ocr="none"))


def test_missing_tesseract_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(OcrUnavailable, match="apt-get install tesseract-ocr"):
        extract(make_pdf([scan_jpeg(["SCAN"])]), local_ref(), Settings())


@needs_tesseract
def test_local_scanned_pages_go_to_tesseract_for_real() -> None:
    data = make_pdf([TEXT_PAGE.format(n=1), scan_jpeg(["INVOICE NUMBER 4711", "TOTAL AMOUNT 99 EUR"])])
    result = extract(data, local_ref(), Settings())
    assert result.engine == "pdf_text+tesseract"
    assert (result.pages, result.ocr_pages) == (2, 1)
    scanned = " ".join(e.text for e in result.elements if e.page == 2)
    assert "INVOICE" in scanned and "4711" in scanned
