"""Checks that refuse a hostile or oversized document before a parser spends memory or time on it.

Each check names the limit it enforces and its setting. They are cheap first lines of defence:
what they cannot see (a stream that inflates past its declared size, a parser's own blow-up) is
caught by the child process's memory cap and wall-time limit (:mod:`ragstream.extract.sandbox`).
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from typing import TYPE_CHECKING

from ..errors import CorruptDocument, TooLarge

if TYPE_CHECKING:
    from ..config import Settings

__all__ = ["check_document", "check_pages", "check_pixels", "table_is_ragged"]

MB = 1024 * 1024
#: Kinds read as text: their size in memory grows with the file, whatever the parser.
TEXT_KINDS = frozenset({"txt", "md", "html", "xml", "json", "csv", "tsv"})
#: Zip containers: OOXML, ODF, EPUB.
ZIP_KINDS = frozenset({"docx", "pptx", "xlsx", "odt", "epub"})
#: An entity declaration, or a DOCTYPE with an internal subset, in an XML prolog.
_DTD = re.compile(rb"<!ENTITY|<!DOCTYPE[^>\[]*\[", re.IGNORECASE)
_XML_MEMBER = re.compile(r"\.(xml|rels|opf|ncx|xhtml|html?|svg)$", re.IGNORECASE)
#: Bytes of the start of an XML part searched for a DTD (the prolog comes first).
_PROLOG_BYTES = 65536


def check_document(data: bytes, kind: str, settings: Settings) -> None:
    """Refuse ``data`` of a detected ``kind`` when it exceeds a limit; returns None when it may be parsed."""
    if kind in TEXT_KINDS and len(data) > settings.max_text_mb * MB:
        raise TooLarge(
            f"{kind.upper()} file is {len(data) / MB:.1f} MB of text; the limit is "
            f"{settings.max_text_mb:g} MB (RAGSTREAM_MAX_TEXT_MB)"
        )
    if kind in ZIP_KINDS:
        _check_zip(data, kind, settings)
    if kind in {"xml", "html"} and _DTD.search(data[:_PROLOG_BYTES]):
        raise TooLarge(
            f"{kind.upper()} file declares XML entities: entity expansion (a 'billion laughs' bomb) is "
            "not processed"
        )


def _check_zip(data: bytes, kind: str, settings: Settings) -> None:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise CorruptDocument(f"{kind.upper()} file is not a readable zip container ({exc})") from None
    if len(members) > settings.max_archive_members:
        raise TooLarge(
            f"{kind.upper()} file holds {len(members):,} files; the limit is "
            f"{settings.max_archive_members:,} (RAGSTREAM_MAX_ARCHIVE_MEMBERS)"
        )
    expanded = sum(m.file_size for m in members)
    if expanded > settings.max_expanded_mb * MB:
        raise TooLarge(
            f"{kind.upper()} file expands to {expanded / MB:,.0f} MB; the limit is "
            f"{settings.max_expanded_mb:g} MB (RAGSTREAM_MAX_EXPANDED_MB): a zip bomb, or split it"
        )
    for member in members:
        if _XML_MEMBER.search(member.filename):
            try:
                with archive.open(member) as part:
                    prolog = part.read(_PROLOG_BYTES)
            except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
                raise CorruptDocument(f"{kind.upper()} part {member.filename} is damaged ({exc})") from None
            if _DTD.search(prolog):
                raise TooLarge(
                    f"{kind.upper()} part {member.filename} declares XML entities: entity expansion "
                    "(a 'billion laughs' bomb) is not processed"
                )


def check_pages(count: int, what: str, settings: Settings) -> None:
    """Refuse a document of more pages (or frames) than ``max_pages``."""
    if count > settings.max_pages:
        raise TooLarge(
            f"{what} has {count:,} pages; the limit is {settings.max_pages:,} (RAGSTREAM_MAX_PAGES)"
        )


def check_pixels(width: float, height: float, what: str, settings: Settings) -> None:
    """Refuse an image (or a page to render) of more pixels than ``max_image_pixels``."""
    pixels = int(width) * int(height)
    if pixels > settings.max_image_pixels:
        raise TooLarge(
            f"{what} is {int(width):,} x {int(height):,} pixels; the limit is "
            f"{settings.max_image_pixels:,} pixels (RAGSTREAM_MAX_IMAGE_PIXELS)"
        )


def table_is_ragged(text: str, delimiter: str, settings: Settings) -> bool:
    """Whether a CSV/TSV has rows of another width than its header (then it is indexed as text).

    Refuses a row wider than ``max_table_columns``: a table parser would build every column.
    """
    width = None
    ragged = False
    rows = csv.reader(io.StringIO(text), delimiter=delimiter)
    try:
        for number, row in enumerate(rows, start=1):
            if len(row) > settings.max_table_columns:
                raise TooLarge(
                    f"row {number} has {len(row):,} columns; the limit is {settings.max_table_columns:,} "
                    "(RAGSTREAM_MAX_TABLE_COLUMNS)"
                )
            if not row:
                continue
            if width is None:
                width = len(row)
            elif len(row) != width:
                ragged = True
    except csv.Error:  # a field past the csv module's size limit, a NUL byte: not a table to parse
        return True
    return ragged
