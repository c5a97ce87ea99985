"""Hostile and broken documents, generated small: zip bombs, frame and page bombs, a wide CSV, an
inflating PDF stream, a pixel bomb, an entity bomb, deep HTML. Used by
tests/integration/ingest/test_hostile.py, tests/unit/extract/test_limits.py and bench/hostile.py;
nothing here is written to the repository."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

MB = 1024 * 1024
_CHUNK = b" " * MB


def _zip(members: dict[str, bytes], big: str, expanded: int, head: bytes, tail: bytes) -> bytes:
    """A zip container whose member ``big`` is ``head`` + ``expanded`` bytes of spaces + ``tail``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        with archive.open(big, "w", force_zip64=True) as part:
            part.write(head)
            for _ in range(expanded // MB):
                part.write(_CHUNK)
            part.write(tail)
    return buffer.getvalue()


_CT = b'<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>'


def docx_bomb(expanded: int) -> bytes:
    """A .docx whose document.xml expands to ``expanded`` bytes."""
    return _zip(
        {"[Content_Types].xml": _CT, "_rels/.rels": b"<Relationships/>"},
        "word/document.xml",
        expanded,
        b'<?xml version="1.0"?><w:document xmlns:w="http://schemas.openxmlformats.org/'
        b'wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>',
        b"</w:t></w:r></w:p></w:body></w:document>",
    )


def pptx_bomb(expanded: int) -> bytes:
    return _zip(
        {
            "[Content_Types].xml": _CT,
            "_rels/.rels": b"<Relationships/>",
            "ppt/presentation.xml": b'<?xml version="1.0"?><p:presentation xmlns:p="http://schemas.'
            b'openxmlformats.org/presentationml/2006/main"/>',
        },
        "ppt/slides/slide1.xml",
        expanded,
        b'<?xml version="1.0"?><p:sld xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main">',
        b"</p:sld>",
    )


def xlsx_bomb(expanded: int) -> bytes:
    return _zip(
        {
            "[Content_Types].xml": _CT,
            "_rels/.rels": b"<Relationships/>",
            "xl/workbook.xml": b'<?xml version="1.0"?><workbook xmlns="http://schemas.openxmlformats.org/'
            b'spreadsheetml/2006/main"/>',
        },
        "xl/worksheets/sheet1.xml",
        expanded,
        b'<?xml version="1.0"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        b"<sheetData>",
        b"</sheetData></worksheet>",
    )


def odt_bomb(expanded: int) -> bytes:
    return _zip(
        {"mimetype": b"application/vnd.oasis.opendocument.text", "META-INF/manifest.xml": b"<manifest/>"},
        "content.xml",
        expanded,
        b'<?xml version="1.0"?><office:document-content xmlns:office="urn:oasis:names:tc:opendocument:'
        b'xmlns:office:1.0"><office:body><office:text>',
        b"</office:text></office:body></office:document-content>",
    )


def epub_bomb(expanded: int) -> bytes:
    return _zip(
        {
            "mimetype": b"application/epub+zip",
            "META-INF/container.xml": b'<?xml version="1.0"?><container version="1.0"><rootfiles>'
            b'<rootfile full-path="content.opf" media-type="application/oebps-package+xml"/>'
            b"</rootfiles></container>",
        },
        "chapter1.xhtml",
        expanded,
        b'<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml"><body><p>',
        b"</p></body></html>",
    )


def entity_bomb() -> bytes:
    """The 'billion laughs': ten levels of ten references each, about 3 GB once expanded."""
    lines = [b'<?xml version="1.0"?>', b"<!DOCTYPE lolz [", b'<!ENTITY lol "lol">']
    for level in range(1, 10):
        refs = b"".join(b"&lol%d;" % (level - 1) if level > 1 else b"&lol;" for _ in range(10))
        lines.append(b'<!ENTITY lol%d "%s">' % (level, refs))
    lines += [b"]>", b"<lolz>&lol9;</lolz>"]
    return b"\n".join(lines)


def docx_entity_bomb() -> bytes:
    """A .docx whose document.xml declares the billion laughs."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", _CT)
        archive.writestr("word/document.xml", entity_bomb())
    return buffer.getvalue()


def tiff_frames(frames: int) -> bytes:
    """A multi-page TIFF of ``frames`` small pages."""
    from PIL import Image

    first = Image.new("1", (64, 64), 1)
    rest = [Image.new("1", (64, 64), i % 2) for i in range(frames - 1)]
    buffer = io.BytesIO()
    first.save(buffer, format="TIFF", save_all=True, append_images=rest, compression="group4")
    return buffer.getvalue()


def png_pixels(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` pixels (a few rows of data: it is never decoded)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    rows = zlib.compress(b"\x00" + b"\xff" * ((width + 7) // 8))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def wide_csv(columns: int) -> bytes:
    header = ",".join(f"c{i}" for i in range(columns))
    return (header + "\n" + ",".join("1" for _ in range(columns)) + "\n").encode()


def ragged_csv() -> bytes:
    """A CSV export whose rows carry more fields than its header (a trailing comment column)."""
    return b"region,revenue\nNorth,120,restated in Q3\nSouth,95\nEast,101,preliminary,see note 4\n"


def _pdf(objects: list[bytes]) -> bytes:
    """A PDF of the given objects (1-based; object 1 is the catalog), with a correct xref table."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def image_only_pdf(pages: int) -> bytes:
    """``pages`` pages, each showing one shared 8x8 image and no text: every page needs OCR."""
    image = (
        b"<< /Type /XObject /Subtype /Image /Width 8 /Height 8 /ColorSpace /DeviceGray "
        b"/BitsPerComponent 8 /Length 64 >>\nstream\n" + bytes(range(64)) + b"\nendstream"
    )
    content = b"q 500 0 0 700 50 50 cm /Im0 Do Q"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>"
        % (b" ".join(b"%d 0 R" % (5 + i) for i in range(pages)), pages),
        image,
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content),
    ]
    objects += [
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 600 800] /Contents 4 0 R "
        b"/Resources << /XObject << /Im0 3 0 R >> >> >>"
        for _ in range(pages)
    ]
    return _pdf(objects)


def inflating_pdf(expanded: int) -> bytes:
    """One page whose content stream inflates (FlateDecode) to ``expanded`` bytes of drawing commands."""
    squeeze = zlib.compressobj(9)
    ops = b"0 0 m 1 1 l S\n" * (MB // 14)
    body = b"".join(squeeze.compress(ops) for _ in range(expanded // len(ops))) + squeeze.flush()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 600 800] /Contents 4 0 R >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(body) + body + b"\nendstream",
    ]
    return _pdf(objects)


def big_text(size: int) -> bytes:
    line = b"The quarterly figures were restated after the audit of the northern region.\n"
    return line * (size // len(line) + 1)


def deep_html(levels: int, tail: str) -> bytes:
    """HTML nested ``levels`` divs deep, with ``tail`` after the deep part."""
    return (
        "<html><body><p>Before the nesting.</p>"
        + "<div>" * levels
        + "<p>At the bottom.</p>"
        + "</div>" * levels
        + f"<p>{tail}</p></body></html>"
    ).encode()


#: name -> (file name, generator): each hostile case of the bench and the tests.
CASES: dict[str, tuple[str, Callable[[], bytes]]] = {
    "docx bomb (1 GiB XML)": ("bomb.docx", lambda: docx_bomb(1024 * MB)),
    "pptx bomb (1 GiB part)": ("bomb.pptx", lambda: pptx_bomb(1024 * MB)),
    "xlsx bomb (1 GiB sheet)": ("bomb.xlsx", lambda: xlsx_bomb(1024 * MB)),
    "odt bomb (1 GiB content)": ("bomb.odt", lambda: odt_bomb(1024 * MB)),
    "epub bomb (1 GiB chapter)": ("bomb.epub", lambda: epub_bomb(1024 * MB)),
    "XML entity bomb": ("lolz.xml", entity_bomb),
    "docx entity bomb": ("lolz.docx", docx_entity_bomb),
    "TIFF of 3,001 frames": ("frames.tiff", lambda: tiff_frames(3001)),
    "PNG of 1.6 gigapixels": ("huge.png", lambda: png_pixels(40000, 40000)),
    "CSV of 1,000,000 columns": ("wide.csv", lambda: wide_csv(1_000_000)),
    "image-only PDF of 1,000 pages": ("scans.pdf", lambda: image_only_pdf(1000)),
    "PDF stream inflating to 1 GiB": ("inflating.pdf", lambda: inflating_pdf(1024 * MB)),
    "text file of 150 MB": ("huge.txt", lambda: big_text(150 * MB)),
}


def write(folder: Path, names: list[str] | None = None) -> dict[str, Path]:
    """Write the named cases (all by default) into ``folder``; name -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, (file_name, make) in CASES.items():
        if names is None or name in names:
            path = folder / file_name
            path.write_bytes(make())
            out[name] = path
    return out
