"""Extraction and its limits: OCR, the child process, and the caps on hostile documents."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class ExtractionSettings(BaseModel):
    """Extraction and its limits.

    OCR, the child process that parses a document, and the caps on hostile documents: hitting one is
    a permanent TooLarge that names it.
    """

    pdf_ocr: Literal["auto", "always", "never"] = Field(
        default="auto", description="auto: OCR only the PDF pages without a usable text layer."
    )
    ocr: Literal["auto", "textract", "tesseract", "none"] = Field(
        default="auto", description="OCR engine. auto: Textract on S3 objects, Tesseract for local files."
    )
    ocr_languages: str = Field(default="eng", description="Tesseract languages, e.g. 'eng+deu'.")
    textract_timeout: float = Field(
        default=600.0, gt=0, description="Seconds to wait for an async Textract job before retrying later."
    )
    textract_wait: float = Field(
        default=60.0,
        gt=0,
        description="Seconds one invocation (Lambda) waits for an asynchronous Textract job before parking "
        "the document for a later one, so its batch mates keep their time. The CLI waits up to "
        "textract_timeout.",
    )
    max_document_mb: float = Field(default=200.0, gt=0, description="Larger documents fail as TooLarge.")
    extract_isolation: Literal["process", "none"] = Field(
        default="process",
        description="process: documents are parsed in a child process, capped in memory and wall time "
        "(a hostile file cannot take the run down). none: in this process, uncapped.",
    )
    extract_timeout: float = Field(
        default=120.0, gt=0, description="Seconds one document may take to extract (OCR included)."
    )
    extract_memory_mb: int = Field(
        default=2048,
        ge=256,
        description="Address space of the child process that parses a document (in Lambda, by default "
        "60% of the function's memory).",
    )
    max_pages: int = Field(default=3000, ge=1, description="Pages of a PDF, frames of a TIFF.")
    max_expanded_mb: float = Field(
        default=512.0,
        gt=0,
        description="Uncompressed size of a zip container (docx, pptx, xlsx, odt, epub): zip bombs.",
    )
    max_archive_members: int = Field(default=10000, ge=1, description="Files inside a zip container.")
    max_image_pixels: int = Field(
        default=200_000_000, ge=1, description="Pixels of an image or a rendered page (decompression bombs)."
    )
    max_table_columns: int = Field(default=2000, ge=1, description="Columns of a CSV or TSV row.")
    max_chunks: int = Field(
        default=20000,
        ge=1,
        description="Chunks of one document: its embedding must fit in one invocation (a Lambda's time).",
    )
    max_text_mb: float = Field(
        default=50.0, gt=0, description="Size of a text-like file (txt, md, html, xml, json, csv)."
    )
