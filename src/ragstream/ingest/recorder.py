"""The ledger writes of ingestion: a failure, a parked OCR job, an unchanged document's newer
sequencer, the intent before a new source's first points. Which record is written is decided in
:mod:`.records`; here it is put, and the index is kept true to it."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import Parked
from ..model import DocumentRecord, Outcome, SourceRef
from . import records

if TYPE_CHECKING:
    from ..index import VectorIndex
    from ..ledger import Ledger
    from .steps import Prepared

__all__ = ["Recorder"]

log = logging.getLogger(__name__)


@dataclass
class Recorder:
    ledger: Ledger
    index: VectorIndex
    fingerprint: str

    def fail(
        self, ref: SourceRef, prev: DocumentRecord | None, version: str | None, exc: Exception, started: float
    ) -> Outcome:
        """Record a document's failure. A permanent one also removes its old points: the object as
        it is now cannot be indexed, so its old text must not answer questions."""
        outcome = records.failure(ref.source, exc, time.perf_counter() - started)
        try:
            if (
                self.ledger.put(records.failed(ref, prev, version, outcome, self.fingerprint))
                and not outcome.retryable
                and prev is not None
            ):
                self.index.delete_source(ref.source)
        except Exception as inner:  # the ledger or index is down too: the caller retries
            log.error("could not record the failure of %s: %s", ref.source, inner)
            outcome = outcome.model_copy(update={"retryable": True})
        return outcome

    def park(
        self, ref: SourceRef, prev: DocumentRecord | None, version: str, job: Parked, started: float
    ) -> Outcome:
        """Record a version whose OCR job (or embedding) outlives this invocation."""
        if not self.ledger.put(records.parked(ref, prev, version, job, self.fingerprint)):
            return records.stale(ref.source, meanwhile=True)
        return Outcome(
            source=ref.source,
            status="pending",
            reason=str(job),
            retry_after=job.retry_after,
            seconds=time.perf_counter() - started,
        )

    def skip(self, prev: DocumentRecord, ref: SourceRef, started: float) -> Outcome:
        """An unchanged document: its newer sequencer recorded, so that older events stay refused."""
        newer = records.touched(prev, ref)
        if newer is not None:
            self.ledger.put(newer)
        return records.skipped(prev, time.perf_counter() - started)

    def intend(self, p: Prepared) -> None:
        """Before the first points of a new source are written, say so (see ``records.intent``)."""
        self.ledger.put(records.intent(p.ref, p.version, p.size, self.fingerprint))
