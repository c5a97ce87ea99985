"""Every unstructured format, from documents generated here; detection; offline guarantees."""

from __future__ import annotations

import io
import json
import socket
import zipfile
from email.message import EmailMessage
from typing import Any

import pytest

from ragstream.config import Settings
from ragstream.errors import CorruptDocument, EmptyDocument, EncryptedDocument, TooLarge, UnsupportedFormat
from ragstream.extract import detect, extract
from ragstream.model import Extraction, SourceRef

PARAGRAPH = "The quarterly report describes how the pipeline indexes documents and answers questions."


def run(data: bytes, name: str, **settings: Any) -> Extraction:
    return extract(data, SourceRef(source=f"file:///tmp/{name}", key=name), Settings(**settings))


def docx_bytes() -> bytes:
    import docx

    document = docx.Document()
    document.add_heading("Quarterly Report", level=1)
    document.add_paragraph(PARAGRAPH)
    document.add_heading("Costs", level=2)
    document.add_paragraph("Storage costs went down because old versions were deleted.")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def pptx_bytes() -> bytes:
    from pptx import Presentation

    deck = Presentation()
    for n in (1, 2):
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = f"Slide {n} title"
        slide.placeholders[1].text = f"Bullet on slide {n} explains what the system does."
    buffer = io.BytesIO()
    deck.save(buffer)
    return buffer.getvalue()


def xlsx_bytes() -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = "Revenue"
    sheet.append(["Region", "Amount"])
    sheet.append(["North", 120])
    other = book.create_sheet("Costs")
    other.append(["Item", "Cost"])
    other.append(["Storage", 7])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def pandoc_bytes(fmt: str, tmp_path: Any) -> bytes:
    import pypandoc

    out = tmp_path / f"doc.{fmt}"
    pypandoc.convert_text(f"# Quarterly Report\n\n{PARAGRAPH}\n", fmt, format="md", outputfile=str(out))
    return out.read_bytes()


def eml_bytes() -> bytes:
    message = EmailMessage()
    message["From"] = "Alice <alice@example.com>"
    message["To"] = "bob@example.com"
    message["Subject"] = "Family day plans"
    message["Date"] = "Tue, 05 Mar 2024 10:00:00 +0000"
    message.set_content(PARAGRAPH)
    return message.as_bytes()


CASES: dict[str, Any] = {
    "report.docx": docx_bytes,
    "deck.pptx": pptx_bytes,
    "book.xlsx": xlsx_bytes,
    "page.html": lambda: f"<html><body><h1>Quarterly Report</h1><p>{PARAGRAPH}</p></body></html>".encode(),
    "notes.md": lambda: f"# Quarterly Report\n\n{PARAGRAPH}\n\n## Costs\n\n- storage\n".encode(),
    "notes.txt": lambda: f"QUARTERLY REPORT\n\n{PARAGRAPH}\n".encode(),
    "table.csv": lambda: b"region,amount\nNorth,120\nSouth,80\n",
    "table.tsv": lambda: b"region\tamount\nNorth\t120\n",
    "mail.eml": eml_bytes,
    "data.json": lambda: json.dumps({"report": {"title": "Quarterly", "items": [PARAGRAPH]}}).encode(),
    "data.xml": lambda: f"<?xml version='1.0'?><report><p>{PARAGRAPH}</p></report>".encode(),
    "letter.rtf": lambda: (r"{\rtf1\ansi{\b Quarterly Report}\par " + PARAGRAPH + r"\par}").encode(),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_generated_documents_extract(name: str) -> None:
    result = run(CASES[name](), name)
    assert result.engine == "unstructured"
    text = " ".join(e.text for e in result.elements)
    assert any(word in text for word in ("Quarterly", "North", "Slide", "quarterly", "Storage")), text
    assert all(e.text.strip() for e in result.elements)


@pytest.mark.parametrize("fmt", ["odt", "epub"])
def test_pandoc_formats(fmt: str, tmp_path: Any) -> None:
    result = run(pandoc_bytes(fmt, tmp_path), f"report.{fmt}")
    assert "pipeline indexes documents" in " ".join(e.text for e in result.elements)


def test_titles_pages_and_sheets() -> None:
    docx = run(docx_bytes(), "r.docx")
    body = next(e for e in docx.elements if e.text.startswith("Storage costs"))
    assert body.title == "Costs"
    deck = run(pptx_bytes(), "d.pptx")
    assert deck.pages == 2 and {e.page for e in deck.elements} == {1, 2}
    book = run(xlsx_bytes(), "b.xlsx")
    assert book.metadata["sheets"] == ["Revenue", "Costs"]
    assert {e.metadata["sheet"] for e in book.elements} == {"Revenue", "Costs"}


def test_email_metadata() -> None:
    result = run(eml_bytes(), "mail.eml")
    assert result.metadata["subject"] == "Family day plans"
    assert "alice@example.com" in result.metadata["sender"]
    assert result.metadata["date"].startswith("2024-03-05")
    assert result.elements[0].metadata["subject"] == "Family day plans"


def test_detection_uses_bytes_not_the_extension() -> None:
    assert detect(docx_bytes(), "renamed.bin").kind == "docx"
    assert detect(xlsx_bytes(), "x.docx").kind == "xlsx"
    assert detect(b"<!DOCTYPE html><html><p>x</p></html>", "page.txt").kind == "html"
    assert detect(eml_bytes(), "message").kind == "eml"
    assert detect(b'{"a": 1}', "data").kind == "json"
    assert detect(b"%PDF-1.7\n...", "scan.txt").kind == "pdf"
    assert detect(b"\x89PNG\r\n\x1a\n....", "x").mime == "image/png"


def test_typed_failures() -> None:
    with pytest.raises(EmptyDocument):
        run(b"", "empty.txt")
    with pytest.raises(EmptyDocument):
        run(b"  \n\n ", "blank.md")
    with pytest.raises(TooLarge, match="RAGSTREAM_MAX_DOCUMENT_MB"):
        run(b"x" * 2 * 1024 * 1024, "big.txt", max_document_mb=1)
    with pytest.raises(CorruptDocument):
        run(b"PK\x03\x04 this is not a zip", "broken.docx")
    with pytest.raises(CorruptDocument, match="not a DOCX"):
        run(b"plain text with a docx name", "fake.docx")
    with pytest.raises(CorruptDocument, match="JSON is malformed"):
        run(b'{"a": ', "bad.json")
    with pytest.raises(UnsupportedFormat):
        run(b"GIF89a....", "anim.gif")
    with pytest.raises(UnsupportedFormat):
        run(b"\x00\x01\x02\x03binary", "blob.bin")
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("a.txt", "hello")
    with pytest.raises(UnsupportedFormat, match="ZIP"):
        run(zipped.getvalue(), "files.zip")


def test_encrypted_email() -> None:
    data = (
        b"From: a@example.com\r\nTo: b@example.com\r\nSubject: secret\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/encrypted; protocol="application/pgp-encrypted"; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n--b--\r\n"
    )
    with pytest.raises(EncryptedDocument, match="encrypted"):
        run(data, "secret.eml")


def test_no_network_and_no_model_download(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    # GIVEN every socket connection fails
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"network access attempted: {args[1:]!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    # WHEN every unstructured format runs, including the text heuristics that use spaCy
    for name, make in CASES.items():
        assert run(make(), name).elements
    narrative = "This sentence clearly describes a process that runs every day.\n\nShort Heading\n"
    result = run(narrative.encode(), "t.txt")
    # THEN nothing was fetched, and the offline tagger told prose from a heading
    assert [e.type for e in result.elements] == ["NarrativeText", "Title"]
    from unstructured.nlp import tokenize

    assert tokenize._get_nlp.__module__ == "ragstream.extract.unstructured"
    with pytest.raises(RuntimeError, match="disabled"):
        tokenize._install_spacy_model()
