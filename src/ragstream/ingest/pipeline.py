"""The ingest pipeline's facade: apply events (``run``), make the index match a folder or bucket
prefix (``sync``), delete a source. The steps it strings together live beside it: ``steps``
(fetch, extract, chunk, points), ``records`` (the ledger's transitions), ``batch`` (embedding and
the replace protocol), ``listing`` (the sync's diff), ``observe`` (traces and timings).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..blobs import Blobs, BlobStore, ObjectGone, SourcePolicy, Unlisted
from ..budget import UNBOUNDED, Deadline
from ..errors import Parked, RejectedSource, Unreadable
from ..index import VectorIndex
from ..model import Change, DocumentRecord, Extraction, Outcome, SourceRef, Status
from ..printable import printable
from ..sources import root_prefix
from ..tracing import NO_SPAN, NOOP, Span, Tracer
from . import observe, records, steps
from .batch import Writer
from .listing import Listing, extra_points, missing_points, stray_versions, under
from .recorder import Recorder
from .steps import Prepared

if TYPE_CHECKING:
    from ..config import Settings
    from ..embeddings import Embedder
    from ..extract.sandbox import Sandbox
    from ..ledger import Ledger

__all__ = ["FLUSH_CHUNKS", "MIN_START_SECONDS", "Pipeline"]

log = logging.getLogger(__name__)

#: Chunks gathered before one embed + upsert round across documents.
FLUSH_CHUNKS = 512
#: Seconds a document needs at least (fetch, extract, embed, commit); with less left it is not
#: started in this invocation but handed back (``pending``), so it never runs into the timeout.
MIN_START_SECONDS = 20.0

OnOutcome = Callable[[Outcome], None] | None


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
        from ..extract.sandbox import Sandbox
        from ..index import open_index
        from ..ledger import open_ledger
        from ..tracing import build_tracer

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

    # -- the parts, over the current pieces (a caller may swap the index, as ``ragstream eval`` does)
    @property
    def recorder(self) -> Recorder:
        return Recorder(self.ledger, self.index, self.settings.fingerprint)

    @property
    def writer(self) -> Writer:
        return Writer(self.settings, self.embedder, self.index, self.tracer, self.recorder)

    # -- public ---------------------------------------------------------------------------------------
    def run(
        self,
        refs: Iterable[SourceRef],
        *,
        force: Collection[str] = (),
        verify: bool = False,
        on_outcome: OnOutcome = None,
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
            observe.end_trace(trace, outcome)
            outcomes.append(outcome)
            if on_outcome:
                on_outcome(outcome)

        writer = self.writer
        pending: list[Prepared] = []
        for ref in refs:
            trace = observe.start_trace(self.tracer, ref)
            step = self._admit(ref)
            if isinstance(step, Outcome):
                done(step, trace)
                continue
            if step is None:  # a deletion: what is batched so far goes first
                writer.flush(pending, done, deadline)
                pending = []
                done(self._delete(ref, trace), trace)
                continue
            prepared = self._prepare(
                step, force=step.source in force, verify=verify, trace=trace, deadline=deadline
            )
            if isinstance(prepared, Outcome):
                done(prepared, trace)
                continue
            pending.append(prepared)
            if sum(len(p.chunks) for p in pending) >= FLUSH_CHUNKS:
                writer.flush(pending, done, deadline)
                pending = []
        writer.flush(pending, done, deadline)
        return outcomes

    def sync(
        self,
        root: str,
        *,
        repair: bool = False,
        on_outcome: OnOutcome = None,
        on_total: Callable[[int], None] | None = None,
    ) -> list[Outcome]:
        """Make the index match a folder or bucket prefix: index what is new or changed (or failed
        transiently), delete what is gone. ``repair`` (reconcile) also checks the index itself: it
        removes points of versions the ledger does not hold, and re-indexes documents missing points.
        ``on_total`` is told how many outcomes are coming as soon as the listing is known (and again
        for the repairs), before any document is read.
        """
        listing = Listing.of(self.store.list(root))
        base = root_prefix(root)
        known = under(root, base, self._records(prefix=base))
        refs = [*listing.listed, *listing.gone(known)]
        if on_total:
            on_total(len(listing.unlisted) + len(refs))
        problems = [self._unlisted(u, known.get(u.source)) for u in listing.unlisted]
        _tell(problems, on_outcome)
        force: set[str] = set()
        repaired: list[Outcome] = []
        if repair:
            repaired, force = self._repair(known, base)
            if on_total and repaired:
                on_total(len(repaired))
            _tell(repaired, on_outcome)
        return problems + repaired + self.run(refs, force=force, verify=repair, on_outcome=on_outcome)

    def is_current(self, record: DocumentRecord | None, ref: SourceRef) -> bool:
        """Whether the ledger already holds this object's outcome (same ETag, same settings), so that
        a reconcile need not send it to be indexed."""
        return records.unchanged(record, self.settings.fingerprint, etag=ref.etag)

    def delete(self, ref: SourceRef) -> Outcome:
        trace = observe.start_trace(self.tracer, ref)
        outcome = self._delete(ref, trace)
        observe.end_trace(trace, outcome)
        return outcome

    # -- steps ----------------------------------------------------------------------------------------
    def _admit(self, ref: SourceRef) -> SourceRef | Outcome | None:
        """The ref to index; None: delete it; an outcome: nothing to do (refused, or HeadObject failed)."""
        try:
            self.sources.check(ref)
        except RejectedSource as exc:
            log.warning("rejected %s: %s", printable(ref.source), exc)
            return Outcome(source=ref.source, status="rejected", reason=str(exc), error_kind=exc.kind)
        if ref.change is not Change.DELETE:
            return ref
        return self._live(ref)  # the key may still have a current object: then make the index match it

    def _prepare(
        self,
        ref: SourceRef,
        *,
        force: bool = False,
        verify: bool = False,
        trace: Span = NO_SPAN,
        deadline: Deadline = UNBOUNDED,
    ) -> Prepared | Outcome:
        """Fetch, extract and chunk one document, unless the ledger says there is nothing to do."""
        started = time.perf_counter()
        if not deadline.allows(MIN_START_SECONDS):
            return Outcome(
                source=ref.source, status="pending", reason="no time left in this invocation", retry_after=0
            )
        prev = self.ledger.get(ref.source)
        if records.is_stale(ref, prev):
            return records.stale(ref.source)
        if prev is not None and not force and not verify and self._unchanged(prev, etag=ref.etag):
            return self.recorder.skip(prev, ref, started)
        timings: dict[str, float] = {}
        version: str | None = None
        try:
            with observe.step(trace, timings, "fetch", input={"source": ref.source}) as span:
                try:
                    data, ref, version = steps.fetch(self.store, ref, self.settings.max_document_bytes)
                except ObjectGone:
                    observe.warn(span, "object no longer exists")
                    return Outcome(source=ref.source, status="gone", reason="object no longer exists")
                observe.fetched(span, len(data), version, ref.etag)
            if prev is not None and not force and self._unchanged(prev, version=version):
                return self.recorder.skip(prev, ref, started)
            extraction = self._extract(data, ref, prev, version, trace, timings, deadline)
            if isinstance(extraction, Parked):
                return self.recorder.park(ref, prev, version, extraction, started)
            with observe.step(trace, timings, "chunk") as span:
                chunks = steps.chunk(extraction, self.settings, self.length)
                observe.chunked(span, chunks, self.settings)
            trace.set_trace(metadata={"version": version, "content_type": extraction.content_type})
            steps.check_size(chunks, self.settings.max_chunks)
        except Exception as exc:  # every failure becomes a recorded outcome for this one document
            return self.recorder.fail(ref, prev, version, exc, started)
        texts = steps.texts(ref, extraction, chunks, self.settings.context_parts)
        return Prepared(ref, prev, version, len(data), extraction, chunks, timings, started, trace, texts)

    def _extract(
        self,
        data: bytes,
        ref: SourceRef,
        prev: DocumentRecord | None,
        version: str,
        trace: Span,
        timings: dict[str, float],
        deadline: Deadline,
    ) -> Extraction | Parked:
        """The document's extraction, or the Parked of an OCR job that outlives the invocation
        (resumed when an earlier invocation parked this same version)."""
        resume = prev.job_id if prev and prev.status is Status.PENDING and prev.version == version else None
        with observe.step(trace, timings, "extract") as span:
            try:
                extraction = steps.extract(
                    data,
                    ref,
                    self.settings,
                    sandbox=self.sandbox,
                    textract=self.textract,
                    deadline=deadline,
                    resume=resume,
                )
            except Parked as parked:
                observe.warn(span, str(parked))
                return parked
            observe.extracted(span, extraction)
        return extraction

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
            return records.failure(ref.source, exc, 0.0)
        if current is None:
            return None
        return current.model_copy(update={"change": Change.UPSERT})

    def _delete(self, ref: SourceRef, trace: Span = NO_SPAN) -> Outcome:
        started = time.perf_counter()
        try:
            prev = self.ledger.get(ref.source)
            if records.is_stale(ref, prev):
                return records.stale(ref.source)
            if not self.ledger.put(records.deleted(ref, prev)):
                return records.stale(ref.source, meanwhile=True)
            with trace.child("index") as span:
                deleted = self.index.count(ref.source) if self.tracer.enabled else 0
                self.index.delete_source(ref.source)
                span.update(metadata={"points_upserted": 0, "points_deleted": deleted})
        except Exception as exc:
            return records.failure(ref.source, exc, time.perf_counter() - started)
        return Outcome(source=ref.source, status="deleted", seconds=time.perf_counter() - started)

    def _unchanged(
        self, prev: DocumentRecord, *, etag: str | None = None, version: str | None = None
    ) -> bool:
        return records.unchanged(prev, self.settings.fingerprint, etag=etag, version=version)

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
        return self.recorder.fail(ref, prev, None, Unreadable(entry.reason), time.perf_counter())

    def _repair(self, known: dict[str, DocumentRecord], base: str) -> tuple[list[Outcome], set[str]]:
        """Remove the points of versions the ledger does not hold; the sources missing points, or
        holding points of an earlier chunking, to index again (only where the store counts exactly)."""
        counts = self.index.versions()
        repaired = []
        for source, version, n in stray_versions(counts, known, base):
            self.index.delete_source(source, only_version=version)
            reason = f"removed {n} points of a version the ledger does not hold"
            repaired.append(Outcome(source=source, status="repaired", reason=reason))
        if not self.index.capabilities.exact_counts:
            return repaired, set()
        force = missing_points(counts, known)
        for source, version, n in extra_points(counts, known):
            self.index.delete_source(source, only_version=version)  # written again whole by this run
            reason = f"{n} points of an earlier chunking: indexing it again"
            repaired.append(Outcome(source=source, status="repaired", reason=reason))
            force.add(source)
        return repaired, force

    def _records(self, *, prefix: str) -> Iterator[DocumentRecord]:
        cursor = None
        while True:
            page, cursor = self.ledger.list(prefix=prefix, limit=500, cursor=cursor)
            yield from page
            if cursor is None:
                return


def _tell(outcomes: list[Outcome], on_outcome: OnOutcome) -> None:
    if on_outcome:
        for outcome in outcomes:
            on_outcome(outcome)


class _FirstUse:
    """The settings' embedder, built when it is first asked to embed: a run with nothing to embed (an
    unchanged folder) never imports the embedding stack (the model runtime, the tokenizer)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._embedder: Embedder | None = None

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if self._embedder is None:
            from ..embeddings import build_embeddings

            self._embedder = build_embeddings(self._settings)
        return self._embedder.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


def _count_tokens(text: str) -> int:
    """The chunker's length function (:func:`ragstream.embeddings.count_tokens`), imported on first use."""
    from ..embeddings import count_tokens

    return count_tokens(text)
