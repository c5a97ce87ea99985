"""The document ledger: one record per source, written conditionally on the S3 sequencer.

Two implementations pass one contract test suite: SQLite (local) and DynamoDB (cloud).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Protocol

from ..model import DocumentRecord, Status

if TYPE_CHECKING:
    from ..config import Settings

__all__ = ["Ledger", "open_ledger"]


class Ledger(Protocol):
    """What the pipeline needs of a ledger."""

    def get(self, source: str) -> DocumentRecord | None:
        """The record of one source, or None."""
        ...

    def put(self, record: DocumentRecord) -> bool:
        """Write ``record`` unless the stored one has a newer sequencer; False when refused.

        A stored record with sequencer S refuses a record whose sequencer is None or sorts below S
        (sequencers are normalised, so string order is event order). Equal sequencers are accepted:
        the same event processed again may update its own outcome. Atomic: two writers racing on
        one source can never both win against each other's newer state.
        """
        ...

    def list(
        self,
        *,
        status: Status | None = None,
        prefix: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> tuple[list[DocumentRecord], str | None]:
        """Records filtered by status and source prefix, one page at a time, until the cursor is None.

        SQLite returns sources in order; DynamoDB does so within a status (a GSI query) but not across
        pages of an unfiltered scan, where a page may also hold fewer than ``limit`` records.
        A cursor that was not returned by this ledger raises ValueError.
        """
        ...

    def get_many(self, sources: Sequence[str]) -> dict[str, DocumentRecord]:
        """The records of many sources at once (a page of a bucket listing); unknown ones absent."""
        ...

    def mark(self, sources: Iterable[str], run: str) -> int:
        """Stamp ``seen_run = run`` on the records of these sources that exist; the count stamped.

        Only that field changes (no sequencer condition: the mark is no event). A record written
        after the mark by a put carries no stamp, but a newer ``updated_at``.
        """
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def open_ledger(settings: Settings) -> Ledger:
    """DynamoDB when ``ledger_table`` is set, else SQLite under ``home``."""
    if settings.ledger_table:
        from .dynamodb import DynamoDBLedger

        return DynamoDBLedger(settings.ledger_table)
    from .sqlite import SQLiteLedger

    return SQLiteLedger(settings.ledger_path)
