"""The limits of extraction, checked before any parser runs, and their settings."""

from __future__ import annotations

import pytest

from ragstream.config import Settings
from ragstream.errors import TooLarge
from ragstream.extract.limits import check_document, check_pages, check_pixels, table_is_ragged
from tests.support import hostile

MB = 1024 * 1024


def test_a_zip_container_over_its_expanded_limit_is_refused_by_its_directory() -> None:
    bomb = hostile.docx_bomb(64 * MB)
    with pytest.raises(TooLarge, match=r"expands to 64 MB; the limit is 32 MB \(RAGSTREAM_MAX_EXPANDED_MB\)"):
        check_document(bomb, "docx", Settings(max_expanded_mb=32))
    check_document(bomb, "docx", Settings(max_expanded_mb=128))  # within the limit: parsed


def test_too_many_members_are_refused() -> None:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i in range(30):
            archive.writestr(f"word/media/{i}.txt", b"x")
    with pytest.raises(TooLarge, match="holds 30 files; the limit is 20"):
        check_document(buffer.getvalue(), "docx", Settings(max_archive_members=20))


@pytest.mark.parametrize(
    ("data", "kind"), [(hostile.entity_bomb(), "xml"), (hostile.docx_entity_bomb(), "docx")]
)
def test_entity_declarations_are_refused(data: bytes, kind: str) -> None:
    with pytest.raises(TooLarge, match="declares XML entities"):
        check_document(data, kind, Settings())


def test_an_xhtml_doctype_without_an_internal_subset_is_fine() -> None:
    page = b'<?xml version="1.0"?><!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.1//EN" "x.dtd"><html/>'
    check_document(page, "html", Settings())


def test_text_size_pages_and_pixels() -> None:
    with pytest.raises(TooLarge, match=r"RAGSTREAM_MAX_TEXT_MB"):
        check_document(b"x" * (2 * MB), "txt", Settings(max_text_mb=1))
    check_document(b"x" * (2 * MB), "pdf", Settings(max_text_mb=1))  # not a text kind
    with pytest.raises(TooLarge, match=r"has 11 pages; the limit is 10 \(RAGSTREAM_MAX_PAGES\)"):
        check_pages(11, "PDF", Settings(max_pages=10))
    check_pages(10, "PDF", Settings(max_pages=10))
    with pytest.raises(TooLarge, match=r"RAGSTREAM_MAX_IMAGE_PIXELS"):
        check_pixels(20_001, 10_000, "page 1", Settings(max_image_pixels=200_000_000))


def test_tables_ragged_or_too_wide() -> None:
    settings = Settings(max_table_columns=5)
    assert table_is_ragged(hostile.ragged_csv().decode(), ",", settings)
    assert not table_is_ragged("a,b\n1,2\n3,4\n", ",", settings)
    with pytest.raises(TooLarge, match=r"row 1 has 6 columns; the limit is 5"):
        table_is_ragged("a,b,c,d,e,f\n", ",", settings)


def test_in_lambda_the_worker_gets_a_share_of_the_function_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "3008")
    assert Settings().extract_memory_mb == 1804
    assert Settings(extract_memory_mb=1000).extract_memory_mb == 1000  # set explicitly: kept
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
    assert Settings().extract_memory_mb == 2048
