"""The vocabulary of the pipeline: event -> SourceRef -> Element -> Chunk -> point -> DocumentRecord."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field, field_validator

__all__ = [
    "Answer",
    "Change",
    "Chunk",
    "Citation",
    "DocumentRecord",
    "Element",
    "Extraction",
    "Outcome",
    "OutcomeStatus",
    "SearchHit",
    "SourceRef",
    "Status",
    "normalize_sequencer",
]


SEQUENCER_WIDTH = 32


def normalize_sequencer(value: str | None) -> str | None:
    """S3 sequencers are hex strings of varying length: left-pad with zeros so that they compare as text.

    AWS: "to compare these values, first left pad the shorter value with zeros, and then do a
    lexicographical comparison". Stored normalised, the ledger (SQLite or DynamoDB) compares them as
    plain strings, also inside DynamoDB condition expressions.
    """
    if value is None or value == "":
        return None
    text = value.strip().upper()
    if not all(c in "0123456789ABCDEF" for c in text) or len(text) > SEQUENCER_WIDTH:
        raise ValueError(f"not an S3 sequencer: {value!r}")
    return text.rjust(SEQUENCER_WIDTH, "0")


def utcnow() -> datetime:
    """Now, timezone-aware, in UTC."""
    return datetime.now(UTC)


class Change(StrEnum):
    """What happened to a source."""

    UPSERT = "upsert"
    DELETE = "delete"


class SourceRef(BaseModel):
    """One object, in S3 (``s3://bucket/key``) or on disk (``file:///abs/path``)."""

    model_config = ConfigDict(frozen=True)

    source: str = Field(description="Canonical URI of the object; the identity of the document.")
    key: str = Field(description="The object key, or the file's path relative to the ingested folder.")
    bucket: str | None = Field(default=None, description="S3 bucket; None for local files.")
    change: Change = Change.UPSERT
    sequencer: str | None = Field(
        default=None, description="S3 event sequencer for this key; None means 'the current state'."
    )
    size: int | None = None
    etag: str | None = None
    last_modified: datetime | None = None
    user_metadata: dict[str, str] = Field(default_factory=dict)

    @field_validator("sequencer")
    @classmethod
    def _normal_sequencer(cls, value: str | None) -> str | None:
        return normalize_sequencer(value)

    @property
    def name(self) -> str:
        """The file name part of the key."""
        return self.key.rsplit("/", 1)[-1]


class Element(BaseModel):
    """A piece of extracted text with where it came from."""

    text: str
    type: str = Field(default="NarrativeText", description="Element category, e.g. Title, Table, ListItem.")
    page: int | None = Field(
        default=None, ge=1, description="1-based page number, where the format has pages."
    )
    title: str | None = Field(default=None, description="Title of the enclosing section.")
    headings: list[str] = Field(
        default_factory=list,
        description="The headings it lies under, outermost first, where the format says how they nest "
        "(else the enclosing section's title alone); the last is ``title``.",
    )
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="Extra per-element facts (email subject, sender, date...)."
    )


class Extraction(BaseModel):
    """What extraction made of one document."""

    elements: list[Element]
    content_type: str = Field(description="The MIME type detected from the bytes and the name.")
    engine: str = Field(description="Which extractor produced the elements, e.g. pdf_text, textract.")
    pages: int | None = None
    ocr_pages: int = 0
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="Document-level facts for every chunk."
    )


class Chunk(BaseModel):
    """A unit of text that gets one vector."""

    text: str
    index: int = Field(ge=0, description="Position of the chunk in its document.")
    tokens: int = Field(default=0, ge=0, description="Its length as the chunker measured it.")
    page: int | None = None
    title: str | None = None
    headings: list[str] = Field(
        default_factory=list, description="The heading path where it starts, outermost first (see Element)."
    )
    metadata: dict[str, Any] = Field(default_factory=dict)


class Status(StrEnum):
    """Where a source stands in the ledger."""

    INDEXED = "indexed"
    FAILED = "failed"
    DELETED = "deleted"
    PENDING = "pending"  # an asynchronous OCR job runs; ``job_id`` names it


class DocumentRecord(BaseModel):
    """The ledger's one record per source."""

    source: str
    status: Status
    version: str | None = Field(default=None, description="sha256 of the bytes last seen.")
    sequencer: str | None = Field(
        default=None, description="Normalised S3 sequencer of the last event applied."
    )
    fingerprint: str | None = Field(
        default=None, description="Settings fingerprint the version was indexed with."
    )
    error: str | None = None
    error_kind: str | None = None
    retryable: bool = False
    content_type: str | None = None
    engine: str | None = None
    chunks: int = 0
    pages: int | None = None
    ocr_pages: int = 0
    size: int | None = None
    etag: str | None = Field(
        default=None, description="S3 ETag, or mtime and size of a local file: a change shows without a read."
    )
    timings: dict[str, float] = Field(default_factory=dict, description="Seconds spent per step.")
    job_id: str | None = Field(
        default=None, description="Textract job of a pending version, resumed when its message returns."
    )
    seen_run: str | None = Field(
        default=None, description="The last reconcile run whose bucket listing held this source (the mark)."
    )
    updated_at: datetime = Field(default_factory=utcnow)

    @field_validator("sequencer")
    @classmethod
    def _normal_sequencer(cls, value: str | None) -> str | None:
        return normalize_sequencer(value)


OutcomeStatus = Literal[
    "indexed", "skipped", "deleted", "failed", "stale", "gone", "repaired", "rejected", "pending"
]


class Outcome(BaseModel):
    """What happened to one source in one run (the ledger's ``Status`` is where it stands after).

    skipped: unchanged since its last outcome; stale: an event newer than this one was applied; gone:
    the object vanished before it was read; repaired: a reconcile removed stray points; rejected: the
    source policy refused it; pending: parked, its event comes back after ``retry_after`` seconds.
    """

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


class SearchHit(BaseModel):
    """One retrieved chunk."""

    id: str
    text: str
    score: float
    source: str
    page: int | None = None
    title: str | None = None
    chunk_index: int | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class Citation(BaseModel):
    """A numbered reference from an answer to the chunk that supports it."""

    n: int = Field(ge=1, description="The number used in the answer text, as [n].")
    source: str
    page: int | None = None
    title: str | None = None
    snippet: str
    score: float


#: The model name of answers made without a language model (``extractive.py``).
EXTRACTIVE = "extractive"
#: The offline embedding model (``embeddings.LocalEmbeddings``), as traces and the embedding id name it.
LOCAL_EMBEDDING_MODEL = "all-MiniLM-L6-v2"


class Answer(BaseModel):
    """An answer grounded in retrieved chunks."""

    question: str
    answer: str
    citations: list[Citation]
    grounded: bool = Field(description="False when the sources did not contain an answer.")
    model: str = Field(description="'extractive' or the chat model's name.")
    trace_id: str | None = None

    @computed_field(  # type: ignore[prop-decorator]
        description=(
            "What `grounded` rests on. 'citations': a chat model's answer that cites only sources it was "
            "given. 'key_terms': an extractive answer (no language model): its sentences are quoted "
            "from the sources and hold the question's key terms, but nothing checked that they answer "
            "it. 'none': not answered."
        )
    )
    @property
    def grounding(self) -> Literal["citations", "key_terms", "none"]:
        """What ``grounded`` rests on (derived: the answer's model and ``grounded``)."""
        if not self.grounded:
            return "none"
        return "key_terms" if self.model == EXTRACTIVE else "citations"
