"""Writing a batch of prepared documents: one embedding call and one upsert across documents, within
the invocation's deadline, then each document committed on its own by the replace protocol.

The replace protocol: the new version's points are upserted first; the ledger record is then put
(conditionally on the sequencer); only then are the source's other versions deleted, and, where the
store can count exactly, a racing older run that dropped ours is undone by writing them again. A
reader therefore always finds one whole version of a document, never none.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..budget import UNBOUNDED, Deadline
from ..errors import Parked
from ..model import Outcome, Status
from ..tracing import NO_SPAN, Span, Tracer
from . import observe, records, steps
from .recorder import Recorder
from .steps import Prepared

if TYPE_CHECKING:
    from ..config import Settings
    from ..embeddings import Embedder
    from ..index import Point, VectorIndex

__all__ = ["MIN_EMBED_SECONDS", "Writer"]

log = logging.getLogger(__name__)

#: Seconds one slice of embedding (and the upsert and commit after it) needs at least.
MIN_EMBED_SECONDS = 10.0

Done = Callable[[Outcome, Span], None]


@dataclass
class Writer:
    settings: Settings
    embedder: Embedder
    index: VectorIndex
    tracer: Tracer
    recorder: Recorder

    def flush(self, batch: list[Prepared], done: Done, deadline: Deadline = UNBOUNDED) -> None:
        """Embed, upsert and commit ``batch``; every document ends with one call of ``done``."""
        if not batch:
            return
        started = time.perf_counter()
        batch, vectors = self._embed_batch(batch, done, deadline)
        if not batch:
            return
        embed_time = time.perf_counter() - started
        started = time.perf_counter()
        index_spans: list[Span] = []
        try:
            self.index.ensure_collection(len(vectors[0]))
            index_spans = [p.trace.child("index") for p in batch]
            points = [steps.points(p, v) for p, v in zip(batch, steps.split(vectors, batch), strict=True)]
            if self.settings.hybrid:
                steps.add_sparse(points, batch)
            for p in batch:
                if p.prev is None:
                    self.recorder.intend(p)
                elif _rechunked(p):
                    self.index.delete_source(p.ref.source, only_version=p.version)
            self.index.upsert([pt for doc in points for pt in doc])
        except Exception as exc:
            observe.end_all(index_spans, exc)
            for p in batch:
                done(self.recorder.fail(p.ref, p.prev, p.version, exc, p.started), p.trace)
            return
        self._commit_all(batch, points, index_spans, done, embed_time, time.perf_counter() - started)

    def _embed_batch(
        self, batch: list[Prepared], done: Done, deadline: Deadline
    ) -> tuple[list[Prepared], list[list[float]]]:
        """The documents embedded whole, and their vectors; the rest are parked for later when the
        time ran out, and all of them failed when the embedding failed."""
        texts = [text for p in batch for text in p.embedded]
        spans = [observe.embed_span(self.tracer, self.settings, p, len(batch), len(texts)) for p in batch]
        try:
            vectors = self._embed(texts, deadline)
        except Exception as exc:
            observe.end_all(spans, exc)
            for p in batch:
                done(self.recorder.fail(p.ref, p.prev, p.version, exc, p.started), p.trace)
            return [], []
        observe.end_all(spans, None)
        if len(vectors) == len(texts):
            return batch, vectors
        whole, late = _embedded_whole(batch, len(vectors))
        for p in late:
            parked = Parked("no time left in this invocation to embed it", retry_after=0)
            done(self.recorder.park(p.ref, p.prev, p.version, parked, p.started), p.trace)
        return whole, vectors[: sum(len(p.chunks) for p in whole)]

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

    def _commit_all(
        self,
        batch: list[Prepared],
        points: list[list[Point]],
        spans: list[Span],
        done: Done,
        embed_time: float,
        upsert_time: float,
    ) -> None:
        total = sum(len(p.chunks) for p in batch)
        for p, doc_points, span in zip(batch, points, spans, strict=True):
            share = len(p.chunks) / total
            p.timings["embed"] = embed_time * share
            p.timings["index"] = upsert_time * share
            observe.indexed(span, len(doc_points), total, len(batch), upsert_time)
            try:
                outcome = self.commit(p, doc_points, span)
            except Exception as exc:
                observe.failed(span, exc)
                outcome = self.recorder.fail(p.ref, p.prev, p.version, exc, p.started)
            span.end()
            done(outcome, p.trace)

    def commit(self, p: Prepared, points: list[Point], span: Span = NO_SPAN) -> Outcome:
        """Record the new version, then drop the source's other versions (the replace protocol)."""
        ref, ex = p.ref, p.extraction
        started = time.perf_counter()
        record = records.indexed(
            ref,
            p.prev,
            version=p.version,
            size=p.size,
            fingerprint=self.settings.fingerprint,
            extraction=ex,
            chunks=len(p.chunks),
            timings=p.timings,
        )
        if not self.recorder.ledger.put(record):
            current = self.recorder.ledger.get(ref.source)
            if current is None or current.version != p.version:
                self.index.delete_source(ref.source, only_version=p.version)
            return records.stale(ref.source, meanwhile=True)
        deleted = self._replace(p, points)
        p.timings["commit"] = time.perf_counter() - started
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

    def _replace(self, p: Prepared, points: list[Point]) -> int:
        """Drop every other version of a replaced (or first-committed: a run that died after its
        upsert may have left another version) source; the points deleted, when traced."""
        source, prev = p.ref.source, p.prev
        if prev is not None and prev.status is Status.INDEXED and prev.version == p.version:
            return 0
        deleted = 0
        if self.tracer.enabled:  # counted only to be traced
            deleted = self.index.count(source) - self.index.count(source, p.version)
        self.index.delete_source(source, keep_version=p.version)
        exact = self.index.capabilities.exact_counts and self.index.capabilities.read_your_writes
        if exact and self.index.count(source, p.version) < len(points):
            log.warning("points of %s vanished during a replace; writing them again", source)
            self.index.upsert(points)
        return deleted


def _rechunked(p: Prepared) -> bool:
    """Whether the same bytes now make fewer chunks than the indexed points (the chunking settings
    changed). Points are named by (source, version, chunk index), so the new ones overwrite the first
    of the old and the rest would stay, answering with the old chunks' text for good; the version's
    points are dropped before the new ones are written instead. The document is missing from answers
    for that moment: the price of a settings change, never of an edit (an edit is a new version)."""
    prev = p.prev
    return (
        prev is not None
        and prev.status is Status.INDEXED
        and prev.version == p.version
        and prev.chunks > len(p.chunks)
    )


def _embedded_whole(batch: list[Prepared], embedded: int) -> tuple[list[Prepared], list[Prepared]]:
    """The documents whose chunks are all among the first ``embedded`` texts, and the others."""
    whole: list[Prepared] = []
    end = 0
    for p in batch:
        end += len(p.chunks)
        if end > embedded:
            break
        whole.append(p)
    return whole, batch[len(whole) :]
