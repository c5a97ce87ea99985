"""The resolver of the query API: the gate in front of routing, and the state of one request.

Before routing, a gate answers 413 for a body over ``max_body_bytes`` and 401 without the right
``x-api-key`` (compared in constant time with every configured key) or, with ``RAGSTREAM_AUTH=jwt``,
without the claims of the HTTP API's JWT authorizer; ``/health``, ``/openapi.json``, the web page
(``GET /`` and its assets under ``/ui/``, see :mod:`ragstream.web`) and CORS pre-flights are open.

The gate runs in :meth:`QueryResolver.resolve`, before Powertools sees the event, and not as a
middleware: Powertools runs its validation middleware first, so a gate added with ``app.use()``
would answer 422 to an anonymous caller, who must never learn more than 401. It also turns away
what would make Powertools answer 500 (a form body, JSON nested too deeply), and rewrites
``/documents/<anything>`` so that the source is one path segment.

The caller's :class:`~ragstream.access.Scope` goes into ``context["scope"]`` for the routes
(:func:`scope_of`).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, CORSConfig

from .. import web
from ..access import Authenticator, Scope

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from ..config import Settings

API_KEY_HEADER = "x-api-key"
#: Paths that answer without an API key (and everything under ``web.ASSETS_PREFIX``).
OPEN_PATHS = frozenset({"/health", "/openapi.json", "/"})
DOCUMENTS_PREFIX = "/documents/"


def scope_of(context: Mapping[str, Any]) -> Scope:
    """The caller's scope in a request's context (set by the gate; nothing when unset)."""
    scope = context.get("scope")
    return scope if isinstance(scope, Scope) else Scope.of("none", [])


def cors_config(settings: Settings) -> CORSConfig | None:
    """The CORS configuration of the settings' ``cors_origins``, or None when there are none."""
    origins = settings.cors_origins
    if not origins:
        return None
    return CORSConfig(
        allow_origin=origins[0],
        extra_origins=origins[1:] or None,
        allow_headers=[API_KEY_HEADER, "Authorization", "Content-Type"],
        max_age=600,
    )


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
    in a context variable, one per thread, as Powertools' own ``HttpResolver`` does for ASGI. The
    routes of an included ``Router`` read the same state: a Router asks its resolver for it.
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
        return scope_of(self.context)

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
