"""HTTP routes and schemas of the query API, shared by the query Lambda and ``ragstream serve``.

One app factory, :func:`build_app`, returns a Powertools ``APIGatewayHttpResolver`` (payload format
2.0) with request/response validation and an OpenAPI document at ``GET /openapi.json``. The Lambda
handler calls ``app.resolve(event, context)``; the local server turns HTTP requests into the same
events.

Before routing, a gate answers 413 for a body over ``max_body_bytes`` and 401 without the right
``x-api-key`` (compared in constant time with every configured key) or, with ``RAGSTREAM_AUTH=jwt``,
without the claims of the HTTP API's JWT authorizer; ``/health``, ``/openapi.json``, the web page
(``GET /`` and its assets under ``/ui/``, see :mod:`ragstream.web`) and CORS pre-flights are open.
It runs before validation so that an anonymous caller never learns more than 401. The page holds
no data: its calls to the API carry the key the user enters. The caller's
:class:`~ragstream.access.Scope` is then ANDed into every read of every route (see ``access.py``):
search hits, answers and citations, ledger records and cursors, feedback.

``GET /documents/{source}`` carries the source URI (``s3://bucket/key``, ``file:///path``) either
URL-encoded in one segment (``/documents/s3%3A%2F%2Fbucket%2Fa%2Fb.pdf``) or as is, slashes and
all (``/documents/s3://bucket/a/b.pdf``, the greedy ``{source+}`` route of the HTTP API). Either
way the text after ``/documents/`` is percent-decoded exactly once.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Annotated, Any, Literal, Protocol
from urllib.parse import quote, unquote

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, CORSConfig, Response
from aws_lambda_powertools.event_handler.exceptions import (
    BadRequestError,
    ForbiddenError,
    NotFoundError,
    ServiceError,
)
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn, HTTPBearer
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from . import web
from .access import Authenticator, FeedbackSigner, Scope, list_in_scope
from .errors import ConfigError, RagstreamError, TransientError
from .index import SearchFilter
from .model import Answer, DocumentRecord, SearchHit, Status

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from .config import Settings
    from .ledger import Ledger
    from .query import Retriever
    from .tracing import Tracer

__all__ = [
    "API_KEY_HEADER",
    "Feedback",
    "FeedbackResult",
    "FeedbackSink",
    "QueryResolver",
    "app_from_settings",
    "build_app",
    "log_feedback",
    "tracing_feedback",
]

log = logging.getLogger(__name__)

API_KEY_HEADER = "x-api-key"
#: Paths that answer without an API key (and everything under ``web.ASSETS_PREFIX``).
OPEN_PATHS = frozenset({"/health", "/openapi.json", "/"})
#: Seconds a client is told to wait after a 503.
RETRY_AFTER_SECONDS = 5
DOCUMENTS_PREFIX = "/documents/"

try:
    API_VERSION = version("ragstream")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    API_VERSION = "0.0.0"


# -- request and response schemas -------------------------------------------------------------------

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


# -- feedback seam ---------------------------------------------------------------------------------------


class FeedbackSink(Protocol):
    """Records a feedback (Langfuse when tracing is configured)."""

    def __call__(self, feedback: Feedback) -> FeedbackResult: ...


def log_feedback(feedback: Feedback) -> FeedbackResult:
    """The default sink: log the feedback; nothing is recorded without tracing."""
    log.info("feedback for trace %s: score %s", feedback.trace_id, feedback.score)
    return FeedbackResult(recorded=False, reason="tracing is not configured")


#: Name of the Langfuse score that ``POST /feedback`` creates.
FEEDBACK_SCORE = "user-feedback"


def tracing_feedback(tracer: Tracer) -> FeedbackSink:
    """A sink that records each feedback as a Langfuse score on the answer's trace."""

    def sink(feedback: Feedback) -> FeedbackResult:
        from .tracing import is_trace_id

        if not is_trace_id(feedback.trace_id):
            return FeedbackResult(recorded=False, reason="trace_id is not a trace id this service returned")
        if tracer.score(feedback.trace_id, FEEDBACK_SCORE, feedback.score, feedback.comment):
            return FeedbackResult(recorded=True)
        return FeedbackResult(recorded=False, reason="the score could not be queued; see the logs")

    return sink


# -- the resolver ----------------------------------------------------------------------------------------


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> dict[str, Any]:
    """An HTTP API (payload 2.0) response in the shape of Powertools' own errors."""
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json", **(headers or {})},
        "cookies": [],
        "body": json.dumps({"statusCode": status, "message": message}, separators=(",", ":")),
        "isBase64Encoded": False,
    }


def _header(event: Mapping[str, Any], name: str) -> str | None:
    for key, value in (event.get("headers") or {}).items():
        if key.lower() == name:
            return str(value)
    return None


def _route_path(event: Mapping[str, Any]) -> tuple[str, str]:
    """(stage prefix, path after it), as Powertools routes it."""
    raw = str(event.get("rawPath") or "/")
    stage = ((event.get("requestContext") or {}).get("stage")) or "$default"
    if stage != "$default" and raw.startswith(f"/{stage}"):
        return f"/{stage}", raw[len(stage) + 1 :]
    return "", raw


def _is_open(path: str) -> bool:
    """Whether ``path`` answers without an API key."""
    return path in OPEN_PATHS or path.startswith(web.ASSETS_PREFIX)


def _body_bytes(event: Mapping[str, Any]) -> int:
    body = event.get("body")
    if not body:
        return 0
    if event.get("isBase64Encoded"):
        return len(body) * 3 // 4 - body[-2:].count("=")
    return len(str(body).encode("utf-8", "surrogatepass"))


@dataclass
class _RequestState:
    """What Powertools keeps per request, for one request."""

    event: Any = None
    lambda_context: Any = None
    context: dict[str, Any] = field(default_factory=dict)
    processed_stack_frames: list[str] = field(default_factory=list)


class QueryResolver(APIGatewayHttpResolver):
    """``APIGatewayHttpResolver`` with a gate (size, authentication) and one-segment document paths.

    The gate puts the caller's scope in ``app.context["scope"]`` for the routes. Safe to resolve
    several requests at once (``ragstream serve`` does, one thread each): Powertools keeps the
    current event on ``BaseRouter``'s class and the routing context on the instance; here both live
    in a context variable, one per thread, as Powertools' own ``HttpResolver`` does for ASGI.
    """

    def __init__(self, *, auth: Authenticator, max_body_bytes: int, cors: CORSConfig | None) -> None:
        self._startup = _RequestState()
        self._request: ContextVar[_RequestState | None] = ContextVar("ragstream_request", default=None)
        # debug=False always: debug mode answers a traceback, whatever POWERTOOLS_DEV says.
        super().__init__(cors=cors, debug=False, enable_validation=True)
        self.auth = auth
        self.max_body_bytes = max_body_bytes

    @property
    def is_open(self) -> bool:
        """True when no API key or JWT is configured: every route answers anyone."""
        return self.auth.open

    @property
    def scope(self) -> Scope:
        """The scope of the request being resolved (set by the gate; nothing when unset)."""
        scope = self.context.get("scope")
        return scope if isinstance(scope, Scope) else Scope.of("none", [])

    @property
    def _state(self) -> _RequestState:
        return self._request.get() or self._startup

    # Powertools declares these as mutable attributes; as properties they are per request.
    @property  # type: ignore[override]
    def current_event(self) -> Any:
        return self._state.event

    @current_event.setter
    def current_event(self, value: Any) -> None:
        self._state.event = value

    @property  # type: ignore[override]
    def lambda_context(self) -> Any:
        return self._state.lambda_context

    @lambda_context.setter
    def lambda_context(self, value: Any) -> None:
        self._state.lambda_context = value

    @property  # type: ignore[override]
    def context(self) -> dict[str, Any]:
        return self._state.context

    @context.setter
    def context(self, value: dict[str, Any]) -> None:
        self._state.context = value

    @property  # type: ignore[override]
    def processed_stack_frames(self) -> list[str]:
        return self._state.processed_stack_frames

    @processed_stack_frames.setter
    def processed_stack_frames(self, value: list[str]) -> None:
        self._state.processed_stack_frames = value

    def resolve(self, event: Mapping[str, Any], context: LambdaContext | Any) -> dict[str, Any]:
        """Gate the request, then route it (what Powertools' ``resolve`` does, with per-request state)."""
        event = _one_segment_source(event)
        rejection = self._gate(event)
        if isinstance(rejection, dict):
            return rejection
        state = _RequestState(
            event=self._to_proxy_event(dict(event)),
            lambda_context=context,
            context={**self._startup.context, **({"scope": rejection} if rejection is not None else {})},
        )
        token = self._request.set(state)
        try:
            response: dict[str, Any] = self._build_response(self._resolve())
            return response
        finally:
            self._request.reset(token)

    def reject(self, event: Mapping[str, Any], status: int, message: str) -> dict[str, Any]:
        """An error answer outside routing, with the CORS headers the origin is allowed."""
        headers: dict[str, str] = {}
        origin = _header(event, "origin")
        if self._cors is not None and origin:
            allowed = self._cors.allowed_origin(origin)
            if allowed:
                headers.update(self._cors.to_dict(allowed))
        return _error(status, message, headers)

    def too_large(self, event: Mapping[str, Any], size: int) -> dict[str, Any]:
        """The 413 answer for a body of ``size`` bytes."""
        return self.reject(
            event, 413, f"request body is {size} bytes; the limit is {self.max_body_bytes} bytes"
        )

    def _gate(self, event: Mapping[str, Any]) -> dict[str, Any] | Scope | None:
        """A rejection, or the caller's scope (None on open paths and pre-flights)."""
        size = _body_bytes(event)
        if size > self.max_body_bytes:
            return self.too_large(event, size)
        method = str(((event.get("requestContext") or {}).get("http") or {}).get("method", "")).upper()
        scope: Scope | None = None
        if method != "OPTIONS" and not _is_open(_route_path(event)[1]):
            scope = self.auth.scope(event, _header(event, API_KEY_HEADER))
            if scope is None:
                what = "JWT" if self.auth.jwt is not None else f"{API_KEY_HEADER} header"
                return self.reject(event, 401, f"missing or wrong {what}")
        content_type = (_header(event, "content-type") or "").split(";")[0].strip().lower()
        if size and content_type and not content_type.endswith("json"):
            # Powertools would parse forms and multipart bodies (a 500 on a missing boundary): JSON only.
            return self.reject(event, 415, "send the body as JSON, with Content-Type: application/json")
        if size:
            body = str(event.get("body"))
            try:
                if event.get("isBase64Encoded"):
                    text = base64.b64decode(body, validate=True).decode("utf-8")
                else:
                    text = body
            except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
                return self.reject(event, 400, "request body is not UTF-8 JSON")
            problem = _json_problem(text)
            if problem is not None:
                return self.reject(event, 400, f"request body is not valid JSON: {problem}")
        return scope


def _json_problem(text: str) -> str | None:
    """Why Powertools could not parse ``text`` without a 500, or None; checked before routing.

    Syntax errors are left to the validation (400, ``json_invalid``). What the parser raises past them:
    an integer beyond Python's 4,300-digit conversion limit (ValueError), and nesting deep enough to
    exhaust its recursion (RecursionError).
    """
    try:
        json.loads(text)
    except RecursionError:
        return "nested too deeply"
    except json.JSONDecodeError:
        return None
    except ValueError:  # int() of more digits than sys.get_int_max_str_digits()
        return "a number has too many digits"
    return None


def _one_segment_source(event: Mapping[str, Any]) -> Mapping[str, Any]:
    """Rewrite ``/documents/<anything>`` so that the source is one percent-encoded path segment."""
    stage, path = _route_path(event)
    if not path.startswith(DOCUMENTS_PREFIX) or len(path) == len(DOCUMENTS_PREFIX):
        return event
    encoded = quote(unquote(path[len(DOCUMENTS_PREFIX) :]), safe="")
    raw = f"{stage}{DOCUMENTS_PREFIX}{encoded}"
    if raw == event.get("rawPath"):
        return event
    return {**event, "rawPath": raw}


def _cors(settings: Settings) -> CORSConfig | None:
    origins = settings.cors_origins
    if not origins:
        return None
    return CORSConfig(
        allow_origin=origins[0],
        extra_origins=origins[1:] or None,
        allow_headers=[API_KEY_HEADER, "Authorization", "Content-Type"],
        max_age=600,
    )


def _json_error(
    status: int,
    message: str,
    detail: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {"statusCode": status, "message": message}
    if detail is not None:
        body["detail"] = detail
    return Response(status_code=status, content_type="application/json", body=body, headers=headers)


def _safe_loc(loc: Any) -> list[str | int]:
    return [part if isinstance(part, int) else str(part)[:200] for part in (loc or [])]


def _trace_keys(body: SearchRequest | AskRequest) -> dict[str, str]:
    """The user and session ids the client sent (only those), for the request's trace."""
    return {k: v for k, v in (("user_id", body.user_id), ("session_id", body.session_id)) if v}


def _responses(ok: type[BaseModel], status: int = 200, **errors: str) -> dict[int, Any]:
    """OpenAPI responses of a secured route: its model, and the error answers every route may give."""
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


def _page_file(name: str, if_none_match: str | None) -> Response:
    """A file of the web page, or 304 when the client's copy (``If-None-Match``) is current."""
    item = web.asset(name)
    if item is None:
        raise NotFoundError(f"no file {name!r}")
    headers = web.headers_for(item)
    if if_none_match and item.etag in {tag.strip() for tag in if_none_match.split(",")}:
        del headers["Content-Type"]
        return Response(status_code=304, headers=headers, compress=False)
    return Response(
        status_code=200, content_type=item.content_type, body=item.body.decode("utf-8"), headers=headers
    )


def build_app(
    retriever: Retriever,
    ledger: Ledger,
    settings: Settings,
    feedback_sink: FeedbackSink = log_feedback,
    *,
    auth: Authenticator | None = None,
) -> QueryResolver:
    """The query API over one retriever and one ledger; build once per process, reuse for every request.

    ``auth`` defaults to the settings' (API keys, or JWT claims).
    """
    auth = auth if auth is not None else Authenticator.from_settings(settings)
    signer = FeedbackSigner.from_settings(settings, auth)
    app = QueryResolver(
        auth=auth,
        max_body_bytes=settings.max_body_bytes,
        cors=_cors(settings),
    )
    secured: list[dict[str, list[str]]] = [{"apiKey": []}]
    records_feedback = feedback_sink is not log_feedback

    # -- errors: a clear 4xx for the client's mistakes, a safe 5xx for ours ----------------------------
    @app.exception_handler(RequestValidationError)
    def _invalid(exc: RequestValidationError) -> Response:
        errors = exc.errors()
        detail = [
            {"loc": _safe_loc(e.get("loc")), "type": e.get("type"), "msg": str(e.get("msg", ""))[:300]}
            for e in errors
        ]
        if any(e.get("type") == "json_invalid" for e in errors):
            return _json_error(400, "request body is not valid JSON", detail)
        return _json_error(422, "request does not match the schema; see detail", detail)

    @app.exception_handler(RequestUnsupportedContentType)
    def _unsupported(exc: RequestUnsupportedContentType) -> Response:
        return _json_error(415, "send the body as application/json")

    @app.exception_handler(ServiceError)
    def _service_error(exc: ServiceError) -> Response:
        return _json_error(exc.status_code, str(exc.msg))

    @app.exception_handler(TransientError)
    def _transient(exc: TransientError) -> Response:
        log.warning("dependency unavailable: %s", exc.kind)
        return _json_error(
            503,
            f"a dependency is unavailable ({exc.kind}); retry later",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )

    @app.exception_handler(ConfigError)
    def _config_error(exc: ConfigError) -> Response:
        log.error("configuration error: %s", exc)
        return _json_error(500, "the service is misconfigured; its operator will find the cause in the logs")

    @app.exception_handler(RagstreamError)
    def _ragstream_error(exc: RagstreamError) -> Response:
        log.error("request failed: %s: %s", exc.kind, exc)
        return _json_error(500, "internal error")

    @app.exception_handler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unexpected error")
        return _json_error(500, "internal error")

    # -- routes ----------------------------------------------------------------------------------------------
    @app.post(
        "/search",
        summary="The top chunks for a query",
        tags=["query"],
        security=secured,
        responses=_responses(SearchResponse),
    )
    def search(body: SearchRequest) -> SearchResponse:
        flt = body.filter.to_search_filter() if body.filter else None
        hits = retriever.search(body.query, top_k=body.top_k, flt=flt, scope=app.scope, **_trace_keys(body))
        return SearchResponse(query=body.query, hits=hits)

    @app.post(
        "/ask",
        summary="An answer with numbered citations",
        tags=["query"],
        security=secured,
        responses=_responses(ScopedAnswer),
    )
    def ask(body: AskRequest) -> ScopedAnswer:
        scope = app.scope
        flt = body.filter.to_search_filter() if body.filter else None
        answer = retriever.ask(body.question, top_k=body.top_k, flt=flt, scope=scope, **_trace_keys(body))
        token = signer.token(answer.trace_id, scope) if answer.trace_id else None
        return ScopedAnswer(**answer.model_dump(), feedback_token=token)

    @app.get(
        "/documents",
        summary="The ledger, one page at a time",
        tags=["documents"],
        security=secured,
        responses=_responses(DocumentList),
    )
    def list_documents(
        status: Annotated[Status | None, Query(description="Only records of this status.")] = None,
        prefix: Annotated[
            str | None, Query(max_length=2048, description="Only sources that start with this.")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=1000, description="Records per page.")] = 100,
        cursor: Annotated[
            str | None, Query(max_length=4096, description="next_cursor of the previous page.")
        ] = None,
    ) -> DocumentList:
        try:
            records, next_cursor = list_in_scope(
                ledger, app.scope, status=status, prefix=prefix or None, limit=limit, cursor=cursor or None
            )
        except ValueError:
            what = "cursor: pass back the next_cursor of the previous page" if cursor else "query"
            raise BadRequestError(f"invalid {what}") from None
        return DocumentList(documents=records, next_cursor=next_cursor)

    @app.get(
        "/documents/<source>",
        summary="The ledger record of one source",
        description="The source URI URL-encoded in one segment (s3%3A%2F%2Fbucket%2Fkey), or as is "
        "with its slashes (s3://bucket/key); it is percent-decoded once.",
        tags=["documents"],
        security=secured,
        responses=_responses(DocumentRecord, e404="No record for this source"),
    )
    def get_document(
        source: Annotated[str, Path(description="The source URI, e.g. s3://bucket/key.")],
    ) -> DocumentRecord:
        uri = unquote(source)
        if not app.scope.allows(uri):  # the same answer as a missing record: existence is not disclosed
            raise NotFoundError(f"no document {uri!r} in the ledger")
        try:
            record = ledger.get(uri)
        except ValueError:
            raise BadRequestError("invalid source") from None
        if record is None:
            raise NotFoundError(f"no document {uri!r} in the ledger")
        return record

    @app.post(
        "/feedback",
        summary="A user's score for an answer",
        tags=["feedback"],
        security=secured,
        status_code=202,
        responses=_responses(FeedbackResult, 202, e403="feedback_token missing or of another scope"),
    )
    def feedback(body: Feedback) -> FeedbackResult:
        scope = app.scope
        if not scope.unrestricted and not signer.verify(body.trace_id, scope, body.feedback_token):
            # a restricted caller scores only answers given to its own scope
            raise ForbiddenError("feedback_token is missing or is not that of an answer given to this caller")
        return feedback_sink(body)

    @app.get("/health", summary="Liveness, and whether the index is reachable", tags=["ops"], security=[])
    def health() -> Health:
        index = retriever.index
        try:
            index.ping()
            reachable = True
        except ConfigError:  # not an outage: the index cannot even be opened (500, the cause logged)
            raise
        except Exception as exc:  # any other failure means "not reachable"; the reason goes to the log
            log.warning("index unreachable: %s", type(exc).__name__)
            reachable = False
        return Health(
            status="ok" if reachable else "degraded",
            index="reachable" if reachable else "unreachable",
            collection=index.collection,
            answerer="extractive" if retriever.chat is None else settings.chat_model,
            feedback=records_feedback,
        )

    # -- the web page: open (it holds no data; its API calls carry the user's key) -----------------
    @app.get("/", include_in_schema=False, enable_validation=False, compress=True)
    def page():  # type: ignore[no-untyped-def]  # no annotation: Powertools would validate it
        return _page_file(web.INDEX, app.current_event.get_header_value("if-none-match"))

    @app.get(f"{web.ASSETS_PREFIX}<name>", include_in_schema=False, enable_validation=False, compress=True)
    def page_asset(name: str):  # type: ignore[no-untyped-def]
        if name == web.INDEX:  # the page has one address: /
            raise NotFoundError(f"no file {name!r}")
        return _page_file(name, app.current_event.get_header_value("if-none-match"))

    @app.get("/openapi.json", include_in_schema=False, enable_validation=False)
    def openapi():  # type: ignore[no-untyped-def]  # no annotation: Powertools would validate it
        return Response(
            status_code=200,
            content_type="application/json",
            body=app.get_openapi_json_schema(
                title="ragstream query API",
                version=API_VERSION,
                description="Search and ask over the indexed documents, with citations. "
                + (
                    "Send a bearer token (Authorization header), verified by the API's JWT authorizer."
                    if auth.jwt is not None
                    else f"Send the API key as the {API_KEY_HEADER} header."
                ),
                security_schemes={  # one name for both: the routes refer to it
                    "apiKey": HTTPBearer(bearerFormat="JWT")  # type: ignore[call-arg]
                    if auth.jwt is not None
                    else APIKey(name=API_KEY_HEADER, in_=APIKeyIn.header)  # type: ignore[call-arg]
                },
            ),
        )

    return app


def app_from_settings(
    settings: Settings, feedback_sink: FeedbackSink | None = None, *, tracer: Tracer | None = None
) -> QueryResolver:
    """The app with its clients (index, embedder, chat model, ledger, tracer) built once from the settings.

    With tracing configured, feedback becomes Langfuse scores unless another sink is given.
    """
    from .ledger import open_ledger
    from .query import Retriever
    from .tracing import build_tracer

    tracer = tracer if tracer is not None else build_tracer(settings)
    if feedback_sink is None:
        feedback_sink = tracing_feedback(tracer) if tracer.enabled else log_feedback
    retriever = Retriever.from_settings(settings, tracer=tracer)
    return build_app(retriever, open_ledger(settings), settings, feedback_sink)
