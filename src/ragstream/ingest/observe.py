"""What ingestion tells the tracer: one trace per object event, a span per step, and the timings the
ledger records. The steps do not know about any of it; the pipeline calls these around them.

A trace is named ``ingest`` with spans fetch, extract, chunk, embed and index, and is ended with
the document's outcome. The embed and index spans of the documents of one batch cover the same
shared call; each carries its document's share.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ..model import LOCAL_EMBEDDING_MODEL, Chunk, Extraction, Outcome, SourceRef
from ..tracing import NO_SPAN, Span, Tracer

if TYPE_CHECKING:
    from ..config import Settings
    from .steps import Prepared

__all__ = [
    "chunked",
    "embed_span",
    "end_all",
    "end_trace",
    "extracted",
    "failed",
    "fetched",
    "indexed",
    "start_trace",
    "step",
    "warn",
]


def start_trace(tracer: Tracer, ref: SourceRef) -> Span:
    """The trace of one object event, tagged with what is known before fetching it."""
    return tracer.start_trace(
        "ingest",
        input={"source": ref.source, "change": ref.change.value, "sequencer": ref.sequencer},
        metadata={"source": ref.source, "bucket": ref.bucket, "key": ref.key},
        tags=["ingest", *([f"bucket:{ref.bucket}"] if ref.bucket else [])],
    )


@contextmanager
def step(trace: Span, timings: dict[str, float], name: str, **span: Any) -> Iterator[Span]:
    """A step's span, and its seconds recorded in ``timings`` under its name."""
    started = time.perf_counter()
    with trace.child(name, **span) as child:
        yield child
    timings[name] = time.perf_counter() - started


def warn(span: Span, message: str) -> None:
    span.update(level="WARNING", status_message=message)


def failed(span: Span, exc: BaseException) -> None:
    span.update(level="ERROR", status_message=f"{type(exc).__name__}: {exc}"[:1000])


def fetched(span: Span, size: int, version: str, etag: str | None) -> None:
    span.update(metadata={"bytes": size, "version": version, "etag": etag})


def extracted(span: Span, extraction: Extraction) -> None:
    span.update(
        metadata={
            "content_type": extraction.content_type,
            "engine": extraction.engine,
            "pages": extraction.pages,
            "ocr_pages": extraction.ocr_pages,
            "elements": len(extraction.elements),
        }
    )


def chunked(span: Span, chunks: list[Chunk], settings: Settings) -> None:
    span.update(
        metadata={
            "chunks": len(chunks),
            "chunk_size": settings.chunk_size,
            "chunk_overlap": settings.chunk_overlap,
        }
    )


def embed_span(
    tracer: Tracer, settings: Settings, p: Prepared, batch_documents: int, batch_inputs: int
) -> Span:
    """This document's share of a batch embedding: its inputs and tokens."""
    if not tracer.enabled:
        return NO_SPAN
    local = settings.embedder == "local"
    tokens = p.tokens
    return p.trace.child(
        "embed",
        as_type="embedding",
        model=LOCAL_EMBEDDING_MODEL if local else settings.embedding_model,
        input={"inputs": len(p.chunks)},
        usage_details={"input": tokens, "total": tokens},
        cost_details={"total": 0.0} if local else None,
        metadata={
            "embedding": settings.embedding_id,
            "inputs": len(p.chunks),
            "tokens": tokens,
            # local: MiniLM word pieces, exact; OpenAI: counted with the MiniLM tokenizer, not tiktoken
            "tokens_approximate": not local,
            "batch_documents": batch_documents,
            "batch_inputs": batch_inputs,
        },
    )


def indexed(span: Span, points: int, batch_points: int, batch_documents: int, upsert_seconds: float) -> None:
    span.update(
        metadata={
            "points_upserted": points,
            "batch_points": batch_points,
            "batch_documents": batch_documents,
            "upsert_seconds_shared": round(upsert_seconds, 4),
        }
    )


def end_all(spans: list[Span], exc: BaseException | None) -> None:
    for span in spans:
        if exc is not None:
            failed(span, exc)
        span.end()


def end_trace(trace: Span, outcome: Outcome) -> None:
    """End a document's trace with its outcome: output, tags, and an error level on failure."""
    if trace is NO_SPAN:
        return
    failure = outcome.status in ("failed", "rejected")
    notable = failure or outcome.status in ("stale", "gone")
    trace.update(
        output=outcome.model_dump(mode="json", exclude_none=True),
        level="ERROR" if failure else ("WARNING" if notable else None),
        status_message=outcome.reason if notable else None,
    )
    tags = ["ingest", outcome.status]
    if outcome.content_type:
        tags.append(f"content_type:{outcome.content_type}")
    if failure and outcome.error_kind:
        tags.append(f"error:{outcome.error_kind}")
    trace.set_trace(
        tags=tags,
        metadata={
            "outcome": outcome.status,
            "reason": outcome.reason,
            "retryable": outcome.retryable if failure else None,
            "content_type": outcome.content_type,
            "chunks": outcome.chunks,
        },
    )
    trace.end()
