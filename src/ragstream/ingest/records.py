"""The ledger's state machine as pure functions: which record a step writes, and what it means.

Nothing here reads or writes anything: the pipeline asks these functions what the next record is
and writes it with a conditional put (see ``ledger``), so every rule can be read, and tested, alone.

The states: ``indexed`` (its points answer), ``failed`` (``retryable`` or for good), ``deleted``,
``pending`` (an OCR job outlives the invocation; its id is kept to resume it). A record is written
only with a sequencer not older than the one it replaces, so an older or duplicate event never
overwrites a newer state.
"""

from __future__ import annotations

import logging

from ..errors import DocumentError, Parked, RagstreamError, TransientError
from ..model import DocumentRecord, Extraction, Outcome, SourceRef, Status

__all__ = [
    "deleted",
    "failed",
    "failure",
    "indexed",
    "intent",
    "is_stale",
    "parked",
    "raise_for_retry",
    "skipped",
    "stale",
    "stray",
    "touched",
    "unchanged",
]

log = logging.getLogger(__name__)


def is_stale(ref: SourceRef, prev: DocumentRecord | None) -> bool:
    """Whether an event older than the one the ledger last applied is arriving late."""
    return bool(ref.sequencer and prev and prev.sequencer and ref.sequencer < prev.sequencer)


def unchanged(
    prev: DocumentRecord | None, fingerprint: str, *, etag: str | None = None, version: str | None = None
) -> bool:
    """Whether the ledger already holds the outcome of this content with the current settings:
    indexed, or failed for good (a corrupt file is not parsed again until it changes)."""
    if prev is None or prev.fingerprint != fingerprint:
        return False
    if not (prev.status is Status.INDEXED or (prev.status is Status.FAILED and not prev.retryable)):
        return False
    if version is not None:
        return prev.version == version
    return etag is not None and prev.etag == etag


def touched(prev: DocumentRecord, ref: SourceRef) -> DocumentRecord | None:
    """An unchanged document's record with a newer sequencer (or etag), so older events stay
    refused; None when there is nothing new to record."""
    newer = ref.sequencer and (prev.sequencer is None or ref.sequencer > prev.sequencer)
    if not (newer or (ref.etag and ref.etag != prev.etag)):
        return None
    return prev.model_copy(
        update={"sequencer": ref.sequencer if newer else prev.sequencer, "etag": ref.etag or prev.etag}
    )


def _sequencer(ref: SourceRef, prev: DocumentRecord | None) -> str | None:
    return ref.sequencer or (prev.sequencer if prev else None)


def intent(ref: SourceRef, version: str, size: int, fingerprint: str) -> DocumentRecord:
    """Written before the first points of a new source: should the process die between the upsert
    and the commit, the next run finishes it (or deletes its points if the object is gone by then).
    Without it the points would be orphans that only a reconcile finds."""
    return DocumentRecord(
        source=ref.source,
        status=Status.FAILED,
        version=version,
        sequencer=ref.sequencer,
        fingerprint=fingerprint,
        error="interrupted: the run stopped while this document was being written; the next run finishes it",
        error_kind="Interrupted",
        retryable=True,
        size=size,
    )


def indexed(
    ref: SourceRef,
    prev: DocumentRecord | None,
    *,
    version: str,
    size: int,
    fingerprint: str,
    extraction: Extraction,
    chunks: int,
    timings: dict[str, float],
) -> DocumentRecord:
    """The record of a version whose points are written."""
    return DocumentRecord(
        source=ref.source,
        status=Status.INDEXED,
        version=version,
        sequencer=_sequencer(ref, prev),
        fingerprint=fingerprint,
        chunks=chunks,
        size=size,
        etag=ref.etag,
        timings={k: round(v, 4) for k, v in timings.items()},
        content_type=extraction.content_type,
        engine=extraction.engine,
        pages=extraction.pages,
        ocr_pages=extraction.ocr_pages,
    )


def parked(
    ref: SourceRef, prev: DocumentRecord | None, version: str, job: Parked, fingerprint: str
) -> DocumentRecord:
    """A version whose OCR job outlives this invocation: its job id, to resume it. The points of
    the indexed version still answer until the new one replaces them."""
    return DocumentRecord(
        source=ref.source,
        status=Status.PENDING,
        version=version,
        sequencer=_sequencer(ref, prev),
        fingerprint=fingerprint,
        job_id=job.job_id,
        size=ref.size,
        etag=ref.etag,
        chunks=prev.chunks if prev else 0,
    )


def failed(
    ref: SourceRef, prev: DocumentRecord | None, version: str | None, outcome: Outcome, fingerprint: str
) -> DocumentRecord:
    """The record of a failure, with its reason and whether a retry may succeed."""
    return DocumentRecord(
        source=ref.source,
        status=Status.FAILED,
        version=version,
        sequencer=_sequencer(ref, prev),
        fingerprint=fingerprint,
        error=outcome.reason,
        error_kind=outcome.error_kind,
        retryable=outcome.retryable,
        size=ref.size,
        etag=ref.etag,
    )


def deleted(ref: SourceRef, prev: DocumentRecord | None) -> DocumentRecord:
    return DocumentRecord(
        source=ref.source,
        status=Status.DELETED,
        version=prev.version if prev else None,
        sequencer=_sequencer(ref, prev),
    )


def stray(rec: DocumentRecord | None, version: str) -> bool:
    """Whether points of ``version`` have no business in the index, given the ledger's record.

    Points of a document that failed transiently stay: they answer until the retry replaces them;
    so do those of the indexed version of a pending document.
    """
    if rec is None or rec.status is Status.DELETED:
        return True
    if rec.status is Status.PENDING:
        return False
    if rec.status is Status.FAILED:
        return not rec.retryable
    return rec.version != version


# -- outcomes -----------------------------------------------------------------------------------------
def stale(source: str, *, meanwhile: bool = False) -> Outcome:
    reason = (
        "a newer event was applied meanwhile" if meanwhile else "an event newer than this one was applied"
    )
    return Outcome(source=source, status="stale", reason=reason)


def skipped(prev: DocumentRecord, seconds: float) -> Outcome:
    """The outcome of an unchanged document: skipped, or failed again with the reason it failed."""
    if prev.status is Status.FAILED:
        return Outcome(
            source=prev.source,
            status="failed",
            reason=prev.error,
            error_kind=prev.error_kind,
            seconds=seconds,
        )
    return Outcome(
        source=prev.source,
        status="skipped",
        reason="unchanged",
        chunks=prev.chunks,
        content_type=prev.content_type,
        engine=prev.engine,
        pages=prev.pages,
        seconds=seconds,
    )


def failure(source: str, exc: Exception, seconds: float) -> Outcome:
    """The outcome of an error: only the document itself is a permanent failure; a fixable
    setting, a permission or a bug is retried (then the dead-letter queue shows it), never lost."""
    if isinstance(exc, RagstreamError):
        reason, kind, retryable = str(exc) or exc.kind, exc.kind, not isinstance(exc, DocumentError)
    else:
        log.exception("unexpected error on %s", source)
        reason, kind, retryable = f"{type(exc).__name__}: {exc}", "InternalError", True
    if isinstance(exc, DocumentError):
        log.info("document failed: %s: %s", source, reason)
    return Outcome(
        source=source, status="failed", reason=reason, error_kind=kind, retryable=retryable, seconds=seconds
    )


def raise_for_retry(outcomes: list[Outcome]) -> None:
    """Raise a TransientError when any outcome should be retried (the queue redelivers it)."""
    retry = [o for o in outcomes if o.status == "failed" and o.retryable]
    if retry:
        detail = "; ".join(f"{o.source}: {o.reason}" for o in retry[:5])
        raise TransientError(f"{len(retry)} document(s) to retry: {detail}")
