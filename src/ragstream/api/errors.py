"""How the query API answers errors: a clear 4xx for the client's mistakes, a safe 5xx for ours.

Every error answer has the shape of :class:`~ragstream.api.schemas.ErrorBody`. A 5xx never carries
the cause (no exception text, no traceback): the cause goes to the log, where the operator finds it.
"""

from __future__ import annotations

import logging
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import ServiceError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)

from ..errors import ConfigError, RagstreamError, TransientError

log = logging.getLogger("ragstream.api")

#: Seconds a client is told to wait after a 503.
RETRY_AFTER_SECONDS = 5


def json_error(
    status: int,
    message: str,
    detail: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """An error answer in the shape of every other: statusCode, message and, for 4xx, detail."""
    body: dict[str, Any] = {"statusCode": status, "message": message}
    if detail is not None:
        body["detail"] = detail
    return Response(status_code=status, content_type="application/json", body=body, headers=headers)


def _safe_loc(loc: Any) -> list[str | int]:
    return [part if isinstance(part, int) else str(part)[:200] for part in (loc or [])]


def invalid_request(exc: RequestValidationError) -> Response:
    """400 for a body that is not JSON, 422 for one that does not match the schema (with detail)."""
    errors = exc.errors()
    detail = [
        {"loc": _safe_loc(e.get("loc")), "type": e.get("type"), "msg": str(e.get("msg", ""))[:300]}
        for e in errors
    ]
    if any(e.get("type") == "json_invalid" for e in errors):
        return json_error(400, "request body is not valid JSON", detail)
    return json_error(422, "request does not match the schema; see detail", detail)


def unsupported_content_type(exc: RequestUnsupportedContentType) -> Response:
    return json_error(415, "send the body as application/json")


def service_error(exc: ServiceError) -> Response:
    """The 4xx a route raised (BadRequestError, NotFoundError, ForbiddenError), with its message."""
    return json_error(exc.status_code, str(exc.msg))


def transient(exc: TransientError) -> Response:
    """503 with Retry-After: a dependency is down for now, and the client may try again."""
    log.warning("dependency unavailable: %s", exc.kind)
    return json_error(
        503,
        f"a dependency is unavailable ({exc.kind}); retry later",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def config_error(exc: ConfigError) -> Response:
    log.error("configuration error: %s", exc)
    return json_error(500, "the service is misconfigured; its operator will find the cause in the logs")


def ragstream_error(exc: RagstreamError) -> Response:
    log.error("request failed: %s: %s", exc.kind, exc)
    return json_error(500, "internal error")


def unexpected(exc: Exception) -> Response:
    log.exception("unexpected error")
    return json_error(500, "internal error")


def register_errors(app: APIGatewayHttpResolver) -> None:
    """Register the error answers on ``app``; Powertools picks the handler of the nearest class."""
    app.exception_handler(RequestValidationError)(invalid_request)
    app.exception_handler(RequestUnsupportedContentType)(unsupported_content_type)
    app.exception_handler(ServiceError)(service_error)
    app.exception_handler(TransientError)(transient)
    app.exception_handler(ConfigError)(config_error)
    app.exception_handler(RagstreamError)(ragstream_error)
    app.exception_handler(Exception)(unexpected)
