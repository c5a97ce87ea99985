"""Ingestion: SourceRef -> bytes -> elements -> chunks -> points -> ledger record.

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

The modules, read top to bottom: ``pipeline`` (the facade), ``steps`` (fetch, extract, chunk,
points), ``records`` (the ledger's transitions, pure), ``recorder`` (their writes), ``batch``
(embedding within the deadline, the replace protocol), ``listing`` (a sync's diff), ``observe``
(traces and timings), ``queue`` (the ingest queue), ``dispatch`` (one message applied),
``reconcile`` (the fanned-out reconcile of a bucket).
"""

from ..model import Outcome
from .pipeline import Pipeline
from .records import raise_for_retry

__all__ = ["Outcome", "Pipeline", "raise_for_retry"]
