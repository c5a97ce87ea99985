"""The steps of one document, as data in and data out: fetch -> extract -> chunk -> points.

The steps know nothing of the ledger, traces or timings (the pipeline wraps them in those); each one
raises a typed error (``errors.py``) that becomes the document's recorded failure.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..budget import Deadline
from ..chunking import chunk_elements, document_title, embedded_text
from ..errors import EmptyDocument, TooLarge
from ..index import Point, SparseVector, chunk_metadata, point_id
from ..model import Chunk, DocumentRecord, Extraction, SourceRef
from ..tracing import NO_SPAN, Span

if TYPE_CHECKING:
    from ..blobs import BlobStore
    from ..config import Settings
    from ..extract.sandbox import Sandbox

__all__ = ["Prepared", "add_sparse", "check_size", "chunk", "extract", "fetch", "points", "split", "texts"]


@dataclass
class Prepared:
    """A document extracted and chunked, waiting for its embeddings."""

    ref: SourceRef
    prev: DocumentRecord | None
    version: str
    size: int
    extraction: Extraction
    chunks: list[Chunk]
    timings: dict[str, float]
    started: float
    trace: Span = NO_SPAN
    #: Per chunk, the text it is embedded from: its document context, then its own text.
    embedded: list[str] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        """Word pieces to embed (exact for the local model, close to OpenAI's count)."""
        return sum(c.tokens for c in self.chunks)


def fetch(store: BlobStore, ref: SourceRef, max_bytes: int) -> tuple[bytes, SourceRef, str]:
    """The object's bytes, its ref completed by the store, and its version (sha256 of the bytes).
    Raises ObjectGone when it vanished since its event."""
    data, ref = store.read(ref, max_bytes=max_bytes)
    return data, ref, hashlib.sha256(data).hexdigest()


def extract(
    data: bytes,
    ref: SourceRef,
    settings: Settings,
    *,
    sandbox: Sandbox | None,
    textract: Any,
    deadline: Deadline,
    resume: str | None,
) -> Extraction:
    """Text and structure of the document: in a capped child process when there is a sandbox.
    ``resume`` is the id of an OCR job started by an earlier invocation. Raises Parked when the
    OCR job outlives the deadline."""
    within = deadline.within(settings.textract_wait)
    if sandbox is not None:
        return sandbox.extract(data, ref, settings, deadline=within, ocr_job=resume)
    from ..extract import extract as extract_in_process

    return extract_in_process(data, ref, settings, textract=textract, deadline=within, ocr_job=resume)


def chunk(extraction: Extraction, settings: Settings, length: Callable[[str], int]) -> list[Chunk]:
    return chunk_elements(
        extraction.elements,
        chunk_size=settings.chunk_size,
        chunk_overlap=settings.chunk_overlap,
        length=length,
    )


def check_size(chunks: list[Chunk], max_chunks: int) -> None:
    """Refuse a document with nothing to index, or too many chunks to index in one go."""
    if not chunks:
        raise EmptyDocument("no text to index after extraction")
    if len(chunks) > max_chunks:
        raise TooLarge(
            f"document makes {len(chunks):,} chunks; the limit is {max_chunks:,} "
            "(RAGSTREAM_MAX_CHUNKS): split it"
        )


def texts(ref: SourceRef, extraction: Extraction, chunks: list[Chunk], parts: frozenset[str]) -> list[str]:
    """Per chunk, the text to embed: the document's context (title, section) then the chunk."""
    title = document_title(ref.key, extraction.metadata, extraction.elements)
    return [embedded_text(c, title, parts) for c in chunks]


def points(p: Prepared, vectors: list[list[float]]) -> list[Point]:
    """The points of one document: its chunks with their vectors and metadata."""
    ref, ex = p.ref, p.extraction
    extra: dict[str, Any] = {**ref.user_metadata, **ex.metadata}
    return [
        Point(
            id=point_id(ref.source, p.version, c.index),
            vector=vector,
            text=c.text,
            metadata=chunk_metadata(
                source=ref.source,
                version=p.version,
                chunk_index=c.index,
                bucket=ref.bucket,
                key=ref.key,
                content_type=ex.content_type,
                engine=ex.engine,
                page=c.page,
                title=c.title,
                last_modified=ref.last_modified,
                extra={**extra, **c.metadata},
            ),
        )
        for c, vector in zip(p.chunks, vectors, strict=True)
    ]


def add_sparse(points: list[list[Point]], batch: list[Prepared]) -> None:
    """Give every point the BM25 vector of its embedded text (hybrid retrieval)."""
    from ..lexical import encode_document

    for doc_points, p in zip(points, batch, strict=True):
        for point, text in zip(doc_points, p.embedded, strict=True):
            indices, values = encode_document(text)
            point.sparse = SparseVector(indices=indices, values=values)


def split(vectors: list[list[float]], batch: list[Prepared]) -> Iterator[list[list[float]]]:
    """The vectors of one batched embedding call, document by document."""
    start = 0
    for p in batch:
        yield vectors[start : start + len(p.chunks)]
        start += len(p.chunks)
