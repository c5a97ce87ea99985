"""Where state lives and what feeds the index: the home folder, the ledger, the bucket, the queue."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field


class IngestSettings(BaseModel):
    """State and the bucket.

    The home folder, the ledger, the bucket kept in sync and the queue of the cloud ingest.
    """

    home: Path = Field(
        default=Path(".ragstream"),
        description="Local state: embedded Qdrant, SQLite ledger. In Lambda only /tmp is writable.",
    )
    ledger_table: str | None = Field(
        default=None, description="DynamoDB table of the ledger. Unset: SQLite under home."
    )
    bucket: str | None = Field(
        default=None, description="The bucket kept in sync; the scheduled reconcile lists it."
    )
    queue_url: str | None = Field(
        default=None,
        description="The ingest queue (cloud): parked documents come back through it, and the scheduled "
        "reconcile fans its listing pages and sweeps out over it.",
    )
    reconcile_page_size: int = Field(
        default=1000, ge=1, le=1000, description="Objects of the bucket listing one reconcile step compares."
    )
    sweep_page_size: int = Field(
        default=500, ge=1, le=1000, description="Ledger records one reconcile sweep step checks."
    )
    progress_seconds: float = Field(
        default=30.0,
        gt=0,
        description="Off a terminal, seconds between the one-line progress reports of ingest, reconcile "
        "and eval (on a terminal a bar shows it all the time).",
    )
