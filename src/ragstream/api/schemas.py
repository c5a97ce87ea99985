"""The request and response models of the query API, and the OpenAPI description of its answers.

The models are the API's contract: every request body is validated against them before a route
runs (``extra="forbid"``: an unknown field is a 422, not silently dropped), and ``/openapi.json`` is
generated from them.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from ..index import SearchFilter
from ..model import Answer, DocumentRecord, SearchHit

try:
    API_VERSION = version("ragstream")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    API_VERSION = "0.0.0"

MetadataKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_\-]{1,128}$")]
#: A user or session id as Langfuse takes it: printable US-ASCII, at most 200 characters.
TraceKey = Annotated[str, StringConstraints(pattern=r"^[ -~]{1,200}$")]


class Filter(BaseModel):
    """Restricts a search; every field given must match (AND). The caller's scope is ANDed to it."""

    model_config = ConfigDict(extra="forbid")

    source_prefix: str | None = Field(
        default=None,
        min_length=1,
        max_length=2048,
        description="A folder of sources ('s3://bucket/reports/'), or one exact source.",
    )
    content_type: str | None = Field(
        default=None, min_length=1, max_length=255, description="MIME type, e.g. 'application/pdf'."
    )
    metadata: dict[MetadataKey, str | int | bool] = Field(  # type: ignore[assignment]
        default_factory=dict,
        max_length=16,
        description="Equality on the object's user metadata (x-amz-meta-*): {'team': 'finance'}.",
    )

    def to_search_filter(self) -> SearchFilter:
        """The index filter of this request (its scope is added by the core, never by the client)."""
        return SearchFilter(
            source_prefix=self.source_prefix, content_type=self.content_type, metadata=dict(self.metadata)
        )


class SearchRequest(BaseModel):
    """``POST /search``."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=4000, description="What to look for.")
    top_k: int | None = Field(
        default=None, ge=1, le=100, description="How many chunks to return (default: the server's top_k)."
    )
    filter: Filter | None = None
    user_id: TraceKey | None = Field(default=None, description="The end user, recorded on the trace.")
    session_id: TraceKey | None = Field(
        default=None, description="Groups the traces of one conversation or session."
    )


class SearchResponse(BaseModel):
    """The chunks nearest to the query, best first."""

    query: str
    hits: list[SearchHit]


class AskRequest(BaseModel):
    """``POST /ask``."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, max_length=4000, description="A question about the documents.")
    top_k: int | None = Field(
        default=None, ge=1, le=100, description="Chunks to answer from (default: the server's top_k)."
    )
    filter: Filter | None = None
    user_id: TraceKey | None = Field(default=None, description="The end user, recorded on the trace.")
    session_id: TraceKey | None = Field(
        default=None, description="Groups the traces of one conversation or session."
    )


class ScopedAnswer(Answer):
    """An answer, and the token that lets its asker (or a caller of the same scope) give feedback."""

    feedback_token: str | None = Field(
        default=None, description="Send it back with the trace_id to POST /feedback."
    )


class DocumentList(BaseModel):
    """One page of ledger records; pass ``next_cursor`` back as ``cursor`` for the next one."""

    documents: list[DocumentRecord]
    next_cursor: str | None = None


class Feedback(BaseModel):
    """A user's score for an answer, recorded against the answer's trace."""

    model_config = ConfigDict(extra="forbid")

    trace_id: str = Field(min_length=1, max_length=256, description="The trace_id of the answer.")
    feedback_token: str | None = Field(
        default=None,
        max_length=128,
        description="The feedback_token of the answer; required for an API key or token bound to prefixes.",
    )
    score: float = Field(ge=0, le=1, allow_inf_nan=False, description="0 (bad) to 1 (good).")
    comment: str | None = Field(default=None, max_length=4000)


class FeedbackResult(BaseModel):
    """What became of a feedback."""

    recorded: bool
    reason: str | None = None


class Health(BaseModel):
    """Liveness, and whether the vector index answers."""

    status: Literal["ok", "degraded"]
    index: Literal["reachable", "unreachable"]
    collection: str
    answerer: str
    feedback: bool = Field(
        default=False, description="Whether POST /feedback records scores (tracing is configured)."
    )
    version: str = API_VERSION


class ErrorBody(BaseModel):
    """Every error answer."""

    statusCode: int
    message: str
    detail: list[dict[str, Any]] | None = None


#: The OpenAPI security of every route that needs a key or a JWT (the scheme is named in ops.py).
SECURED: list[dict[str, list[str]]] = [{"apiKey": []}]


def responses(ok: type[BaseModel], status: int = 200, **errors: str) -> dict[int, Any]:
    """OpenAPI responses of a secured route: its model, and the error answers every route may give.

    ``errors`` adds a route's own answers, keyed ``e<status>``: ``e404="No record for this source"``.
    """
    described = {
        400: "Malformed request (e.g. invalid JSON)",
        401: "Missing or wrong x-api-key",
        413: "Body over the configured limit",
        503: "A dependency is unavailable; retry after Retry-After seconds",
        **{int(code.removeprefix("e")): text for code, text in errors.items()},
    }
    out: dict[int, Any] = {
        status: {"description": "Successful Response", "content": {"application/json": {"model": ok}}}
    }
    for code, text in sorted(described.items()):
        out[code] = {"description": text, "content": {"application/json": {"model": ErrorBody}}}
    return out
