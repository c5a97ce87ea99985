"""The ingest pipeline: SourceRef -> bytes -> elements -> chunks -> points -> ledger record.

The invariants (see ARCHITECTURE.md):
- a point's id is ``uuid5(source|version|chunk_index)``: the same bytes rewrite the same points;
- same version and same settings fingerprint as the ledger's indexed record: skipped before any
  extraction or embedding;
- a new version is upserted first, then the source's other versions are deleted;
- every ledger write is conditional on the S3 sequencer: an older or duplicate event never
  overwrites a newer state;
- a permanent failure is recorded and the source's old points removed (the index stays true to the
  bucket); a transient one is recorded as retryable and reported so that the caller retries it.

Work is batched across documents: chunks of several documents are embedded and upserted together,
then each document is committed on its own.

Each object event gets its own trace (see ``tracing.py``): spans fetch, extract, chunk, embed and
index under a root named ``ingest``, ended with the outcome. The embed and index spans of the
documents of one batch cover the same shared call; each carries its document's share.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from .blobs import Blobs, BlobStore, ObjectGone, SourcePolicy, Unlisted
from .budget import UNBOUNDED, Deadline
from .chunking import chunk_elements, document_title, embedded_text
from .errors import (
    DocumentError,
    EmptyDocument,
    Parked,
    RagstreamError,
    RejectedSource,
    TooLarge,
    TransientError,
    Unreadable,
)
from .index import Point, SparseVector, VectorIndex, chunk_metadata, point_id
from .model import Change, Chunk, DocumentRecord, Extraction, SourceRef, Status
from .printable import printable
from .tracing import NO_SPAN, NOOP, Span, Tracer

if TYPE_CHECKING:
    from .config import Settings
    from .embeddings import Embedder
    from .extract.sandbox import Sandbox
    from .ledger import Ledger

__all__ = ["Outcome", "Pipeline", "raise_for_retry"]

log = logging.getLogger(__name__)

#: Chunks gathered before one embed + upsert round across documents.
FLUSH_CHUNKS = 512
#: Seconds a document needs at least (fetch, extract, embed, commit); with less left it is not
#: started in this invocation but handed back (``pending``), so it never runs into the timeout.
MIN_START_SECONDS = 20.0
#: Seconds one slice of embedding (and the upsert and commit after it) needs at least.
MIN_EMBED_SECONDS = 10.0

OutcomeStatus = Literal[
    "indexed", "skipped", "deleted", "failed", "stale", "gone", "repaired", "rejected", "pending"
]


class Outcome(BaseModel):
    """What happened to one source in one run."""

    source: str
    status: OutcomeStatus
    reason: str | None = None
    error_kind: str | None = None
    retryable: bool = False
    chunks: int = 0
    embedded: int = 0
    tokens: int = 0
    pages: int | None = None
    ocr_pages: int = 0
    content_type: str | None = None
    engine: str | None = None
    seconds: float = 0.0
    retry_after: int | None = Field(
        default=None, description="pending: seconds after which the event should be applied again."
    )


@dataclass
class _Prepared:
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


@dataclass
class Pipeline:
    """The pieces of ingestion, wired once (per process, per Lambda container) and reused."""

    settings: Settings
    embedder: Embedder
    index: VectorIndex
    ledger: Ledger
    store: BlobStore
    textract: Any = None
    #: Parses documents in a capped child process; None: in this process (a handed-in Textract client
    #: cannot cross processes, so tests that stub Textract run without one).
    sandbox: Sandbox | None = None
    length: Callable[[str], int] = field(default=len)
    tracer: Tracer = field(default=NOOP)
    sources: SourcePolicy = field(default_factory=SourcePolicy)
    _dim: int | None = None

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        store: BlobStore | None = None,
        embedder: Embedder | None = None,
        index: VectorIndex | None = None,
        ledger: Ledger | None = None,
        textract: Any = None,
        tracer: Tracer | None = None,
        sources: SourcePolicy | None = None,
    ) -> Pipeline:
        """Build every piece from the settings; any piece can be handed in instead.

        ``sources`` says which sources may be read (default: any named bucket, and local files).
        """
        from .extract.sandbox import Sandbox
        from .index import open_index
        from .ledger import open_ledger
        from .tracing import build_tracer

        return cls(
            settings=settings,
            embedder=embedder or _FirstUse(settings),
            index=index or open_index(settings),
            ledger=ledger or open_ledger(settings),
            store=store or Blobs(),
            textract=textract,
            sandbox=(
                Sandbox.from_settings(settings)
                if settings.extract_isolation == "process" and textract is None
                else None
            ),
            length=_count_tokens,
            tracer=tracer if tracer is not None else build_tracer(settings),
            sources=sources or SourcePolicy(),
        )

    # -- public ---------------------------------------------------------------------------------------
    def run(
        self,
        refs: Iterable[SourceRef],
        *,
        force: Collection[str] = (),
        verify: bool = False,
        on_outcome: Callable[[Outcome], None] | None = None,
        deadline: Deadline = UNBOUNDED,
    ) -> list[Outcome]:
        """Apply each ref (upsert or delete); one outcome per ref, in order of completion.

        Sources in ``force`` are re-indexed even when the ledger says they are unchanged. With
        ``verify``, an unchanged ETag (for a local file: mtime and size) is not taken on trust: the
        bytes are read and hashed, so that an edit which kept both is still found. A ref that the
        source policy refuses is ``rejected``: nothing fetched, indexed or written to the ledger (an
        event naming an arbitrary source must not be able to add records either). With a bounded
        ``deadline`` a document is not started without ``MIN_START_SECONDS`` left, and an OCR job
        that outlives the invocation is parked: both give a ``pending`` outcome whose event the
        caller applies again later (after ``retry_after`` seconds).
        """
        outcomes: list[Outcome] = []

        def done(outcome: Outcome, trace: Span) -> None:
            _end_trace(trace, outcome)
            outcomes.append(outcome)
            if on_outcome:
                on_outcome(outcome)

        pending: list[_Prepared] = []
        for ref in refs:
            trace = self._start_trace(ref)
            try:
                self.sources.check(ref)
            except RejectedSource as exc:
                log.warning("rejected %s: %s", printable(ref.source), exc)
                done(
                    Outcome(source=ref.source, status="rejected", reason=str(exc), error_kind=exc.kind), trace
                )
                continue
            if ref.change is Change.DELETE:
                live = self._live(ref)
                if isinstance(live, Outcome):
                    done(live, trace)
                    continue
                if live is None:
                    self._flush(pending, done, deadline)
                    pending = []
                    done(self._delete(ref, trace), trace)
                    continue
                ref = live  # the key still has a current object: make the index match it
            prepared = self._prepare(
                ref, force=ref.source in force, verify=verify, trace=trace, deadline=deadline
            )
            if isinstance(prepared, Outcome):
                done(prepared, trace)
                continue
            pending.append(prepared)
            if sum(len(p.chunks) for p in pending) >= FLUSH_CHUNKS:
                self._flush(pending, done, deadline)
                pending = []
        self._flush(pending, done, deadline)
        return outcomes

    def sync(
        self,
        root: str,
        *,
        repair: bool = False,
        on_outcome: Callable[[Outcome], None] | None = None,
    ) -> list[Outcome]:
        """Make the index match a folder or bucket prefix: index what is new or changed (or failed
        transiently), delete what is gone. ``repair`` (reconcile) also checks the index itself: it
        removes points of versions the ledger does not hold, and re-indexes documents missing points.
        """
        listed: list[SourceRef] = []
        unlisted: list[Unlisted] = []
        for entry in self.store.list(root):
            if isinstance(entry, Unlisted):
                unlisted.append(entry)
            else:
                listed.append(entry)
        seen = {r.source for r in listed} | {u.source for u in unlisted}
        hidden = tuple(u.source for u in unlisted if u.folder)  # unknown, so never taken as deleted
        base = root if "://" in root else file_ref_root(root)
        records = {
            rec.source: rec
            for rec in self._records(prefix=base)
            if "://" in root or base.endswith("/") or rec.source == base  # one local file: only itself
        }
        gone = [
            SourceRef(
                source=rec.source,
                key=_key(rec.source),
                bucket=_bucket(rec.source),
                change=Change.DELETE,
            )
            for rec in records.values()
            if rec.source not in seen
            and rec.status is not Status.DELETED
            and not rec.source.startswith(hidden)
        ]
        problems = [self._unlisted(u, records.get(u.source)) for u in unlisted]
        for outcome in problems:
            if on_outcome:
                on_outcome(outcome)
        force: set[str] = set()
        repaired: list[Outcome] = []
        if repair:
            counts = self.index.versions()
            for (source, version), n in sorted(counts.items()):
                if not source.startswith(base):
                    continue
                rec = records.get(source)
                if _stray(rec, version):
                    self.index.delete_source(source, only_version=version)
                    repaired.append(
                        Outcome(
                            source=source,
                            status="repaired",
                            reason=f"removed {n} points of a version the ledger does not hold",
                        )
                    )
            for rec in records.values() if self.index.capabilities.exact_counts else ():
                if (
                    rec.status is Status.INDEXED
                    and counts.get((rec.source, rec.version or ""), 0) < rec.chunks
                ):
                    force.add(rec.source)
        for outcome in repaired:
            if on_outcome:
                on_outcome(outcome)
        done = self.run([*listed, *gone], force=force, verify=repair, on_outcome=on_outcome)
        return problems + repaired + done

    def _unlisted(self, entry: Unlisted, prev: DocumentRecord | None) -> Outcome:
        """The outcome of what a listing met but cannot read: a folder is reported (and retried next
        time: it may become readable), a file is recorded failed with the reason."""
        if entry.folder:
            return Outcome(
                source=entry.source,
                status="failed",
                reason=entry.reason,
                error_kind="Unreadable",
                retryable=True,
            )
        ref = SourceRef(source=entry.source, key=entry.source.rsplit("/", 1)[-1])
        return self._fail(ref, prev, None, Unreadable(entry.reason), time.perf_counter())

    def is_current(self, record: DocumentRecord | None, ref: SourceRef) -> bool:
        """Whether the ledger already holds this object's outcome (same ETag, same settings), so that
        a reconcile need not send it to be indexed."""
        return self._unchanged(record, etag=ref.etag)

    def delete(self, ref: SourceRef) -> Outcome:
        trace = self._start_trace(ref)
        outcome = self._delete(ref, trace)
        _end_trace(trace, outcome)
        return outcome

    # -- steps ----------------------------------------------------------------------------------------
    def _start_trace(self, ref: SourceRef) -> Span:
        """The trace of one object event, tagged with what is known before fetching it."""
        return self.tracer.start_trace(
            "ingest",
            input={"source": ref.source, "change": ref.change.value, "sequencer": ref.sequencer},
            metadata={"source": ref.source, "bucket": ref.bucket, "key": ref.key},
            tags=["ingest", *([f"bucket:{ref.bucket}"] if ref.bucket else [])],
        )

    def _prepare(
        self,
        ref: SourceRef,
        *,
        force: bool = False,
        verify: bool = False,
        trace: Span = NO_SPAN,
        deadline: Deadline = UNBOUNDED,
    ) -> _Prepared | Outcome:
        started = time.perf_counter()
        timings: dict[str, float] = {}
        if not deadline.allows(MIN_START_SECONDS):
            return Outcome(
                source=ref.source, status="pending", reason="no time left in this invocation", retry_after=0
            )
        prev = self.ledger.get(ref.source)
        if _is_stale(ref, prev):
            return Outcome(
                source=ref.source, status="stale", reason="an event newer than this one was applied"
            )
        if not force and not verify and self._unchanged(prev, etag=ref.etag):
            self._touch(prev, ref)  # type: ignore[arg-type]
            return _skipped(prev, started)  # type: ignore[arg-type]
        version = None
        try:
            t = time.perf_counter()
            with trace.child("fetch", input={"source": ref.source}) as span:
                try:
                    data, ref = self.store.read(ref, max_bytes=self.settings.max_document_bytes)
                except ObjectGone:
                    span.update(level="WARNING", status_message="object no longer exists")
                    return Outcome(source=ref.source, status="gone", reason="object no longer exists")
                version = hashlib.sha256(data).hexdigest()
                span.update(metadata={"bytes": len(data), "version": version, "etag": ref.etag})
            timings["fetch"] = time.perf_counter() - t
            if not force and self._unchanged(prev, version=version):
                self._touch(prev, ref)  # type: ignore[arg-type]
                return _skipped(prev, started)  # type: ignore[arg-type]
            t = time.perf_counter()
            from .extract import extract

            resume = (
                prev.job_id if prev and prev.status is Status.PENDING and prev.version == version else None
            )
            with trace.child("extract") as span:
                try:
                    if self.sandbox is not None:  # in a capped child process
                        extraction = self.sandbox.extract(
                            data,
                            ref,
                            self.settings,
                            deadline=deadline.within(self.settings.textract_wait),
                            ocr_job=resume,
                        )
                    else:
                        extraction = extract(
                            data,
                            ref,
                            self.settings,
                            textract=self.textract,
                            deadline=deadline.within(self.settings.textract_wait),
                            ocr_job=resume,
                        )
                except Parked as parked:
                    span.update(level="WARNING", status_message=str(parked))
                    return self._park(ref, prev, version, parked, started)
                span.update(
                    metadata={
                        "content_type": extraction.content_type,
                        "engine": extraction.engine,
                        "pages": extraction.pages,
                        "ocr_pages": extraction.ocr_pages,
                        "elements": len(extraction.elements),
                    }
                )
            timings["extract"] = time.perf_counter() - t
            t = time.perf_counter()
            with trace.child("chunk") as span:
                chunks = chunk_elements(
                    extraction.elements,
                    chunk_size=self.settings.chunk_size,
                    chunk_overlap=self.settings.chunk_overlap,
                    length=self.length,
                )
                span.update(
                    metadata={
                        "chunks": len(chunks),
                        "chunk_size": self.settings.chunk_size,
                        "chunk_overlap": self.settings.chunk_overlap,
                    }
                )
            timings["chunk"] = time.perf_counter() - t
            trace.set_trace(metadata={"version": version, "content_type": extraction.content_type})
            if not chunks:
                raise EmptyDocument("no text to index after extraction")
            if len(chunks) > self.settings.max_chunks:
                raise TooLarge(
                    f"document makes {len(chunks):,} chunks; the limit is {self.settings.max_chunks:,} "
                    "(RAGSTREAM_MAX_CHUNKS): split it"
                )
        except Exception as exc:  # every failure becomes a recorded outcome for this one document
            return self._fail(ref, prev, version, exc, started)
        title = document_title(ref.key, extraction.metadata, extraction.elements)
        parts = self.settings.context_parts
        texts = [embedded_text(c, title, parts) for c in chunks]
        return _Prepared(ref, prev, version, len(data), extraction, chunks, timings, started, trace, texts)

    def _flush(
        self, batch: list[_Prepared], done: Callable[[Outcome, Span], None], deadline: Deadline = UNBOUNDED
    ) -> None:
        if not batch:
            return
        texts = [text for p in batch for text in p.embedded]
        embed_spans = [self._embed_span(p, len(batch), len(texts)) for p in batch]
        index_spans: list[Span] = []
        try:
            t = time.perf_counter()
            try:
                vectors = self._embed(texts, deadline)
            except Exception as exc:
                _end_all(embed_spans, exc)
                raise
            _end_all(embed_spans, None)
            if len(vectors) < len(texts):  # the time ran out: what is embedded whole goes on, the rest waits
                batch, late = _embedded_whole(batch, len(vectors))
                for p in late:
                    parked = Parked("no time left in this invocation to embed it", retry_after=0)
                    done(self._park(p.ref, p.prev, p.version, parked, p.started), p.trace)
                if not batch:
                    return
                texts = texts[: sum(len(p.chunks) for p in batch)]
                vectors = vectors[: len(texts)]
            embed_time = time.perf_counter() - t
            self.index.ensure_collection(len(vectors[0]))
            t = time.perf_counter()
            index_spans = [p.trace.child("index") for p in batch]
            points = [self._points(p, vecs) for p, vecs in zip(batch, _split(vectors, batch), strict=True)]
            if self.settings.hybrid:
                _add_sparse(points, batch)
            for p in batch:
                if p.prev is None:
                    self._intend(p)
            self.index.upsert([pt for doc in points for pt in doc])
            upsert_time = time.perf_counter() - t
        except Exception as exc:
            _end_all(index_spans, exc)
            for p in batch:
                done(self._fail(p.ref, p.prev, p.version, exc, p.started), p.trace)
            return
        for p, doc_points, span in zip(batch, points, index_spans, strict=True):
            share = len(p.chunks) / len(texts)
            p.timings["embed"] = embed_time * share
            p.timings["index"] = upsert_time * share
            span.update(
                metadata={
                    "points_upserted": len(doc_points),
                    "batch_points": len(texts),
                    "batch_documents": len(batch),
                    "upsert_seconds_shared": round(upsert_time, 4),
                }
            )
            try:
                outcome = self._commit(p, doc_points, span)
            except Exception as exc:
                span.update(level="ERROR", status_message=f"{type(exc).__name__}: {exc}"[:1000])
                outcome = self._fail(p.ref, p.prev, p.version, exc, p.started)
            span.end()
            done(outcome, p.trace)

    def _embed(self, texts: list[str], deadline: Deadline) -> list[list[float]]:
        """The vectors of ``texts``; with a bounded deadline, slice by slice while a slice still has
        time to finish, so fewer vectors than texts come back when the invocation runs out."""
        if not deadline.bounded:
            return self.embedder.embed_documents(texts)
        step = self.settings.embedding_batch_size * self.settings.openai_concurrency
        vectors: list[list[float]] = []
        for start in range(0, len(texts), step):
            if not deadline.allows(MIN_EMBED_SECONDS):
                break
            vectors += self.embedder.embed_documents(texts[start : start + step])
        return vectors

    def _embed_span(self, p: _Prepared, batch_documents: int, batch_inputs: int) -> Span:
        """This document's share of a batch embedding: its inputs and tokens."""
        if not self.tracer.enabled:
            return NO_SPAN
        local = self.settings.embedder == "local"
        tokens = p.tokens
        return p.trace.child(
            "embed",
            as_type="embedding",
            model="all-MiniLM-L6-v2" if local else self.settings.embedding_model,
            input={"inputs": len(p.chunks)},
            usage_details={"input": tokens, "total": tokens},
            cost_details={"total": 0.0} if local else None,
            metadata={
                "embedding": self.settings.embedding_id,
                "inputs": len(p.chunks),
                "tokens": tokens,
                # local: MiniLM word pieces, exact; OpenAI: counted with the MiniLM tokenizer, not tiktoken
                "tokens_approximate": not local,
                "batch_documents": batch_documents,
                "batch_inputs": batch_inputs,
            },
        )

    def _points(self, p: _Prepared, vectors: list[list[float]]) -> list[Point]:
        ref, ex = p.ref, p.extraction
        extra: dict[str, Any] = {**ref.user_metadata, **ex.metadata}
        return [
            Point(
                id=point_id(ref.source, p.version, chunk.index),
                vector=vector,
                text=chunk.text,
                metadata=chunk_metadata(
                    source=ref.source,
                    version=p.version,
                    chunk_index=chunk.index,
                    bucket=ref.bucket,
                    key=ref.key,
                    content_type=ex.content_type,
                    engine=ex.engine,
                    page=chunk.page,
                    title=chunk.title,
                    last_modified=ref.last_modified,
                    extra={**extra, **chunk.metadata},
                ),
            )
            for chunk, vector in zip(p.chunks, vectors, strict=True)
        ]

    def _commit(self, p: _Prepared, points: list[Point], span: Span = NO_SPAN) -> Outcome:
        ref, ex = p.ref, p.extraction
        t = time.perf_counter()
        record = DocumentRecord(
            source=ref.source,
            status=Status.INDEXED,
            version=p.version,
            sequencer=ref.sequencer or (p.prev.sequencer if p.prev else None),
            fingerprint=self.settings.fingerprint,
            content_type=ex.content_type,
            engine=ex.engine,
            chunks=len(p.chunks),
            pages=ex.pages,
            ocr_pages=ex.ocr_pages,
            size=p.size,
            etag=ref.etag,
            timings={k: round(v, 4) for k, v in p.timings.items()},
        )
        if not self.ledger.put(record):
            current = self.ledger.get(ref.source)
            if current is None or current.version != p.version:
                self.index.delete_source(ref.source, only_version=p.version)
            return Outcome(source=ref.source, status="stale", reason="a newer event was applied meanwhile")
        deleted = 0
        if not (p.prev is not None and p.prev.status is Status.INDEXED and p.prev.version == p.version):
            # a replace, or a first commit (a run that died after its upsert may have left another
            # version): drop every other version, then make sure a racing older run did not drop ours
            if self.tracer.enabled:  # counted only to be traced
                deleted = self.index.count(ref.source) - self.index.count(ref.source, p.version)
            self.index.delete_source(ref.source, keep_version=p.version)
            exact = self.index.capabilities.exact_counts and self.index.capabilities.read_your_writes
            if exact and self.index.count(ref.source, p.version) < len(points):
                log.warning("points of %s vanished during a replace; writing them again", ref.source)
                self.index.upsert(points)
        p.timings["commit"] = time.perf_counter() - t
        span.update(metadata={"points_deleted": deleted, "replaced": p.prev is not None})
        return Outcome(
            source=ref.source,
            status="indexed",
            chunks=len(p.chunks),
            embedded=len(p.chunks),
            tokens=p.tokens,
            pages=ex.pages,
            ocr_pages=ex.ocr_pages,
            content_type=ex.content_type,
            engine=ex.engine,
            seconds=time.perf_counter() - p.started,
        )

    def _intend(self, p: _Prepared) -> None:
        """Before the first points of a new source are written, say so in the ledger.

        Should the process die between the upsert and the commit, the source is then known: the next
        run retries it (a retryable failure) or, if it is gone by then, deletes its points. Without
        this record the points would be orphans that only ``reconcile`` finds.
        """
        self.ledger.put(
            DocumentRecord(
                source=p.ref.source,
                status=Status.FAILED,
                version=p.version,
                sequencer=p.ref.sequencer,
                fingerprint=self.settings.fingerprint,
                error="interrupted: the run stopped while this document was being written; "
                "the next run finishes it",
                error_kind="Interrupted",
                retryable=True,
                size=p.size,
            )
        )

    def _live(self, ref: SourceRef) -> SourceRef | Outcome | None:
        """For an S3 removal: the key's current object as an upsert, when it still has one.

        In a versioned bucket ``ObjectRemoved:Delete`` also reports deleting an old version (or the
        delete marker above the object, which brings it back); only HeadObject tells whether the
        document is gone. None: gone (or not in S3), delete it.
        """
        if not ref.bucket:
            return None
        try:
            current = self.store.head(ref)
        except Exception as exc:
            return _outcome_of_error(ref.source, exc, time.perf_counter())
        if current is None:
            return None
        return current.model_copy(update={"change": Change.UPSERT})

    def _delete(self, ref: SourceRef, trace: Span = NO_SPAN) -> Outcome:
        started = time.perf_counter()
        try:
            prev = self.ledger.get(ref.source)
            if _is_stale(ref, prev):
                return Outcome(
                    source=ref.source, status="stale", reason="an event newer than this one was applied"
                )
            record = DocumentRecord(
                source=ref.source,
                status=Status.DELETED,
                version=prev.version if prev else None,
                sequencer=ref.sequencer or (prev.sequencer if prev else None),
            )
            if not self.ledger.put(record):
                return Outcome(
                    source=ref.source, status="stale", reason="a newer event was applied meanwhile"
                )
            with trace.child("index") as span:
                deleted = self.index.count(ref.source) if self.tracer.enabled else 0
                self.index.delete_source(ref.source)
                span.update(metadata={"points_upserted": 0, "points_deleted": deleted})
        except Exception as exc:
            return _outcome_of_error(ref.source, exc, started)
        return Outcome(source=ref.source, status="deleted", seconds=time.perf_counter() - started)

    def _unchanged(
        self, prev: DocumentRecord | None, *, etag: str | None = None, version: str | None = None
    ) -> bool:
        """Whether the ledger already holds the outcome of this content with the current settings:
        indexed, or failed for good (a corrupt file is not parsed again until it changes)."""
        if prev is None or prev.fingerprint != self.settings.fingerprint:
            return False
        if not (prev.status is Status.INDEXED or (prev.status is Status.FAILED and not prev.retryable)):
            return False
        if version is not None:
            return prev.version == version
        return etag is not None and prev.etag == etag

    def _touch(self, prev: DocumentRecord, ref: SourceRef) -> None:
        """Record a newer sequencer (or etag) on an unchanged document, so older events stay refused."""
        newer = ref.sequencer and (prev.sequencer is None or ref.sequencer > prev.sequencer)
        if newer or (ref.etag and ref.etag != prev.etag):
            self.ledger.put(
                prev.model_copy(
                    update={
                        "sequencer": ref.sequencer if newer else prev.sequencer,
                        "etag": ref.etag or prev.etag,
                    }
                )
            )

    def _park(
        self, ref: SourceRef, prev: DocumentRecord | None, version: str, parked: Parked, started: float
    ) -> Outcome:
        """Record a version whose OCR job outlives this invocation (its job id, to resume it)."""
        record = DocumentRecord(
            source=ref.source,
            status=Status.PENDING,
            version=version,
            sequencer=ref.sequencer or (prev.sequencer if prev else None),
            fingerprint=self.settings.fingerprint,
            job_id=parked.job_id,
            size=ref.size,
            etag=ref.etag,
            chunks=prev.chunks if prev else 0,  # the points of the indexed version still answer
        )
        if not self.ledger.put(record):
            return Outcome(source=ref.source, status="stale", reason="a newer event was applied meanwhile")
        return Outcome(
            source=ref.source,
            status="pending",
            reason=str(parked),
            retry_after=parked.retry_after,
            seconds=time.perf_counter() - started,
        )

    def _fail(
        self, ref: SourceRef, prev: DocumentRecord | None, version: str | None, exc: Exception, started: float
    ) -> Outcome:
        outcome = _outcome_of_error(ref.source, exc, started)
        record = DocumentRecord(
            source=ref.source,
            status=Status.FAILED,
            version=version,
            sequencer=ref.sequencer or (prev.sequencer if prev else None),
            fingerprint=self.settings.fingerprint,
            error=outcome.reason,
            error_kind=outcome.error_kind,
            retryable=outcome.retryable,
            size=ref.size,
            etag=ref.etag,
        )
        try:
            if self.ledger.put(record) and not outcome.retryable and prev is not None:
                # the object as it is now cannot be indexed: its old text must not answer questions
                self.index.delete_source(ref.source)
        except Exception as inner:  # the ledger or index is down too: the caller retries
            log.error("could not record the failure of %s: %s", ref.source, inner)
            outcome = outcome.model_copy(update={"retryable": True})
        return outcome

    def _records(self, *, prefix: str) -> Iterator[DocumentRecord]:
        cursor = None
        while True:
            records, cursor = self.ledger.list(prefix=prefix, limit=500, cursor=cursor)
            yield from records
            if cursor is None:
                return


def _end_trace(trace: Span, outcome: Outcome) -> None:
    """End a document's trace with its outcome: output, tags, and an error level on failure."""
    if trace is NO_SPAN:
        return
    failed = outcome.status in ("failed", "rejected")
    trace.update(
        output=outcome.model_dump(mode="json", exclude_none=True),
        level="ERROR" if failed else ("WARNING" if outcome.status in ("stale", "gone") else None),
        status_message=outcome.reason if failed or outcome.status in ("stale", "gone") else None,
    )
    tags = ["ingest", outcome.status]
    if outcome.content_type:
        tags.append(f"content_type:{outcome.content_type}")
    if failed and outcome.error_kind:
        tags.append(f"error:{outcome.error_kind}")
    trace.set_trace(
        tags=tags,
        metadata={
            "outcome": outcome.status,
            "reason": outcome.reason,
            "retryable": outcome.retryable if failed else None,
            "content_type": outcome.content_type,
            "chunks": outcome.chunks,
        },
    )
    trace.end()


def _end_all(spans: list[Span], exc: BaseException | None) -> None:
    for span in spans:
        if exc is not None:
            span.update(level="ERROR", status_message=f"{type(exc).__name__}: {exc}"[:1000])
        span.end()


def _skipped(prev: DocumentRecord, started: float) -> Outcome:
    if prev.status is Status.FAILED:  # unchanged since it failed: the recorded reason still holds
        return Outcome(
            source=prev.source,
            status="failed",
            reason=prev.error,
            error_kind=prev.error_kind,
            seconds=time.perf_counter() - started,
        )
    return Outcome(
        source=prev.source,
        status="skipped",
        reason="unchanged",
        chunks=prev.chunks,
        content_type=prev.content_type,
        engine=prev.engine,
        pages=prev.pages,
        seconds=time.perf_counter() - started,
    )


def _stray(rec: DocumentRecord | None, version: str) -> bool:
    """Whether points of ``version`` have no business in the index, given the ledger's record.

    Points of a document that failed transiently stay: they answer until the retry replaces them.
    """
    if rec is None or rec.status is Status.DELETED:
        return True
    if rec.status is Status.PENDING:  # the indexed version answers until the new one replaces it
        return False
    if rec.status is Status.FAILED:
        return not rec.retryable
    return rec.version != version


def _bucket(source: str) -> str | None:
    return source[5:].split("/", 1)[0] if source.startswith("s3://") else None


def _key(source: str) -> str:
    """The S3 key of an ``s3://`` source, else the file name."""
    if source.startswith("s3://"):
        return source[5:].partition("/")[2]
    return source.rsplit("/", 1)[-1]


def raise_for_retry(outcomes: list[Outcome]) -> None:
    """Raise a TransientError when any outcome should be retried (the queue redelivers it)."""
    retry = [o for o in outcomes if o.status == "failed" and o.retryable]
    if retry:
        detail = "; ".join(f"{o.source}: {o.reason}" for o in retry[:5])
        raise TransientError(f"{len(retry)} document(s) to retry: {detail}")


def _is_stale(ref: SourceRef, prev: DocumentRecord | None) -> bool:
    return bool(ref.sequencer and prev and prev.sequencer and ref.sequencer < prev.sequencer)


class _FirstUse:
    """The settings' embedder, built when it is first asked to embed: a run with nothing to embed (an
    unchanged folder) never imports the embedding stack (the model runtime, the tokenizer)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._embedder: Embedder | None = None

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if self._embedder is None:
            from .embeddings import build_embeddings

            self._embedder = build_embeddings(self._settings)
        return self._embedder.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


def _count_tokens(text: str) -> int:
    """The chunker's length function (:func:`ragstream.embeddings.count_tokens`), imported on first use."""
    from .embeddings import count_tokens

    return count_tokens(text)


def _add_sparse(points: list[list[Point]], batch: list[_Prepared]) -> None:
    """Give every point the BM25 vector of its embedded text (hybrid retrieval)."""
    from .lexical import encode_document

    for doc_points, p in zip(points, batch, strict=True):
        for point, text in zip(doc_points, p.embedded, strict=True):
            indices, values = encode_document(text)
            point.sparse = SparseVector(indices=indices, values=values)


def _embedded_whole(batch: list[_Prepared], embedded: int) -> tuple[list[_Prepared], list[_Prepared]]:
    """The documents whose chunks are all among the first ``embedded`` texts, and the others."""
    whole: list[_Prepared] = []
    end = 0
    for p in batch:
        end += len(p.chunks)
        if end > embedded:
            break
        whole.append(p)
    return whole, batch[len(whole) :]


def _split(vectors: list[list[float]], batch: list[_Prepared]) -> Iterator[list[list[float]]]:
    start = 0
    for p in batch:
        yield vectors[start : start + len(p.chunks)]
        start += len(p.chunks)


def _outcome_of_error(source: str, exc: Exception, started: float) -> Outcome:
    if isinstance(exc, RagstreamError):
        # only the document itself is a permanent failure; a fixable setting or permission is retried
        reason, kind, retryable = str(exc) or exc.kind, exc.kind, not isinstance(exc, DocumentError)
    else:  # a bug or an untranslated error: retry it, then the DLQ shows it; never lose it
        log.exception("unexpected error on %s", source)
        reason, kind, retryable = f"{type(exc).__name__}: {exc}", "InternalError", True
    if isinstance(exc, DocumentError):
        log.info("document failed: %s: %s", source, reason)
    return Outcome(
        source=source,
        status="failed",
        reason=reason,
        error_kind=kind,
        retryable=retryable,
        seconds=time.perf_counter() - started,
    )


def file_ref_root(root: str) -> str:
    """The source prefix of every file under a folder (or the file itself)."""
    from pathlib import Path

    path = Path(root).resolve()
    uri = path.as_uri()
    return uri if path.is_file() else uri.rstrip("/") + "/"
