"""Type detection from the bytes first and the name second (stdlib only: no parser is imported)."""

from __future__ import annotations

import io
import json
import re
import zipfile
from dataclasses import dataclass

from ..errors import CorruptDocument, EncryptedDocument, UnsupportedFormat

__all__ = ["MIME_TYPES", "Detected", "detect", "extension"]

MIME_TYPES: dict[str, str] = {
    "pdf": "application/pdf",
    "png": "image/png",
    "jpeg": "image/jpeg",
    "tiff": "image/tiff",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "doc": "application/msword",
    "ppt": "application/vnd.ms-powerpoint",
    "xls": "application/vnd.ms-excel",
    "msg": "application/vnd.ms-outlook",
    "odt": "application/vnd.oasis.opendocument.text",
    "epub": "application/epub+zip",
    "rtf": "application/rtf",
    "html": "text/html",
    "md": "text/markdown",
    "txt": "text/plain",
    "csv": "text/csv",
    "tsv": "text/tab-separated-values",
    "eml": "message/rfc822",
    "json": "application/json",
    "xml": "application/xml",
}

# Extensions that name a binary container: bytes that are not that container are corrupt.
_BINARY_EXTENSIONS = {
    "pdf": "pdf", "png": "png", "jpg": "jpeg", "jpeg": "jpeg", "tif": "tiff", "tiff": "tiff",
    "docx": "docx", "pptx": "pptx", "xlsx": "xlsx", "doc": "doc", "ppt": "ppt", "xls": "xls",
    "msg": "msg", "odt": "odt", "epub": "epub",
}  # fmt: skip
_TEXT_EXTENSIONS = {
    "html": "html", "htm": "html", "xhtml": "html", "md": "md", "markdown": "md", "txt": "txt",
    "text": "txt", "log": "txt", "csv": "csv", "tsv": "tsv", "tab": "tsv", "eml": "eml",
    "json": "json", "xml": "xml", "rtf": "rtf",
}  # fmt: skip
_UNSUPPORTED_MAGIC: list[tuple[bytes, str]] = [
    (b"GIF87a", "GIF image"),
    (b"GIF89a", "GIF image"),
    (b"\x1f\x8b", "gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", "7-Zip archive"),
    (b"Rar!", "RAR archive"),
    (b"\x7fELF", "executable"),
    (b"MZ", "executable"),
    (b"OggS", "audio"),
    (b"ID3", "audio"),
    (b"fLaC", "audio"),
]
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_HEADER_RE = re.compile(
    r"^(received|from|return-path|mime-version|message-id|date|subject|to|delivered-to|"
    r"reply-to|content-type|x-[\w-]+):",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Detected:
    """The detected type: a short kind ("pdf", "docx", ...) and its MIME type."""

    kind: str

    @property
    def mime(self) -> str:
        """The MIME type of the kind."""
        return MIME_TYPES.get(self.kind, "application/octet-stream")


def extension(name: str) -> str:
    """Lower-case extension of a file name, without the dot; '' when there is none."""
    base = name.rsplit("/", 1)[-1]
    return base.rsplit(".", 1)[-1].lower() if "." in base else ""


def detect(data: bytes, name: str) -> Detected:
    """Detect the type of ``data``; raises UnsupportedFormat, CorruptDocument or EncryptedDocument."""
    ext = extension(name)
    kind = _from_magic(data, ext)
    if kind is None:
        if ext in _BINARY_EXTENSIONS:
            raise CorruptDocument(f"file is named .{ext} but its content is not a {ext.upper()} file")
        kind = _from_text(data, ext)
    return Detected(kind)


def _from_magic(data: bytes, ext: str) -> str | None:
    head = data[:16]
    if b"%PDF-" in data[:1024]:
        return "pdf"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "tiff"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return _zip_kind(data, ext)
    if head.startswith(_OLE_MAGIC):
        return _ole_kind(data, ext)
    if head.lstrip().startswith(b"{\\rtf"):
        return "rtf"
    if head.startswith(b"RIFF") and data[8:12] == b"WEBP":
        raise UnsupportedFormat("WebP images are not supported: convert to PNG or JPEG")
    if head.startswith(b"BM") and ext == "bmp":
        raise UnsupportedFormat("BMP images are not supported: convert to PNG or JPEG")
    for magic, what in _UNSUPPORTED_MAGIC:
        if head.startswith(magic) and not (magic == b"MZ" and ext in _TEXT_EXTENSIONS):
            raise UnsupportedFormat(f"{what} is not a supported document type")
    return None


def _zip_kind(data: bytes, ext: str) -> str:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        names = set(archive.namelist())
        mimetype = archive.read("mimetype").decode("ascii", "replace").strip() if "mimetype" in names else ""
    except (zipfile.BadZipFile, OSError, EOFError, KeyError, ValueError) as exc:
        raise CorruptDocument(f"the ZIP container of this .{ext or 'zip'} file is damaged ({exc})") from None
    if "word/document.xml" in names:
        return "docx"
    if "ppt/presentation.xml" in names:
        return "pptx"
    if "xl/workbook.xml" in names:
        return "xlsx"
    if mimetype == "application/epub+zip" or ("META-INF/container.xml" in names and ext == "epub"):
        return "epub"
    if mimetype == "application/vnd.oasis.opendocument.text":
        return "odt"
    if mimetype.startswith("application/vnd.oasis.opendocument."):
        what = mimetype.rsplit(".", 1)[-1]
        raise UnsupportedFormat(f"OpenDocument {what} files are not supported: only text documents (.odt)")
    if "[Content_Types].xml" in names:
        raise CorruptDocument("Office file without a document part (not a Word, PowerPoint or Excel file)")
    raise UnsupportedFormat("ZIP archives are not supported: upload the documents inside it")


def _ole_kind(data: bytes, ext: str) -> str:
    try:
        import olefile
    except ImportError:  # pragma: no cover - olefile comes with the ingest extra
        if ext in {"doc", "ppt", "xls", "msg"}:
            return ext
        raise UnsupportedFormat("legacy Office file (OLE) cannot be inspected: olefile missing") from None
    try:
        ole = olefile.OleFileIO(io.BytesIO(data))
        streams = {"/".join(entry) for entry in ole.listdir(streams=True, storages=True)}
    except Exception as exc:  # olefile raises plain OSError / various on damage
        raise CorruptDocument(f"legacy Office file is damaged ({type(exc).__name__})") from None
    if "EncryptedPackage" in streams or "EncryptionInfo" in streams:
        raise EncryptedDocument("Office document is password-protected: remove the password and upload again")
    if "WordDocument" in streams:
        return "doc"
    if "PowerPoint Document" in streams:
        return "ppt"
    if "Workbook" in streams or "Book" in streams:
        return "xls"
    if any(s.startswith("__substg1.0_") or "/__substg1.0_" in s for s in streams):
        return "msg"
    raise UnsupportedFormat("legacy Office (OLE) file of an unknown kind is not supported")


def _from_text(data: bytes, ext: str) -> str:
    sample = data[:8192]
    if not sample.startswith((b"\xff\xfe", b"\xfe\xff")) and b"\x00" in sample:
        what = f".{ext} " if ext else ""
        raise UnsupportedFormat(f"binary {what}file of an unknown type is not supported")
    text = (
        sample.decode("utf-8", "ignore")
        if not sample.startswith((b"\xff\xfe", b"\xfe\xff"))
        else (sample.decode("utf-16", "ignore"))
    )
    text = text.lstrip("\ufeff \t\r\n")
    lowered = text[:512].lower()
    sniffed: str | None = None
    if lowered.startswith(("<!doctype html", "<html")) or (
        lowered.startswith("<?xml") and "<html" in lowered
    ):
        sniffed = "html"
    elif lowered.startswith("<?xml"):
        sniffed = "xml"
    elif _looks_like_email(text):
        sniffed = "eml"
    elif text[:1] in "{[" and _parses_as_json(data):
        sniffed = "json"
    by_name = _TEXT_EXTENSIONS.get(ext)
    if by_name in {"md", "csv", "tsv", "html", "xml", "json", "eml", "rtf"}:
        return by_name if by_name != "rtf" else "txt"  # .rtf without an RTF header is plain text
    return sniffed or "txt"


def _looks_like_email(text: str) -> bool:
    lines = text.splitlines()[:12]
    headers = sum(1 for line in lines if _HEADER_RE.match(line))
    return headers >= 3 and bool(lines) and _HEADER_RE.match(lines[0]) is not None


def _parses_as_json(data: bytes) -> bool:
    try:
        json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return False
    return True
