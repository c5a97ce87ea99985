"""``GET /documents`` and ``GET /documents/{source}``: the ledger, as far as the caller's scope reaches.

``GET /documents/{source}`` carries the source URI (``s3://bucket/key``, ``file:///path``) either
URL-encoded in one segment (``/documents/s3%3A%2F%2Fbucket%2Fa%2Fb.pdf``) or as is, slashes and
all (``/documents/s3://bucket/a/b.pdf``, the greedy ``{source+}`` route of the HTTP API). Either
way the text after ``/documents/`` is percent-decoded exactly once: the resolver has made it one
segment before routing.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import unquote

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.exceptions import BadRequestError, NotFoundError
from aws_lambda_powertools.event_handler.openapi.params import Path, Query

from ..access import list_in_scope
from ..model import DocumentRecord, Status
from .deps import Deps
from .resolver import scope_of
from .schemas import SECURED, DocumentList, responses


def router(deps: Deps) -> Router:
    """The ledger routes over ``deps.ledger``; a record out of scope is answered as a missing one."""
    routes = Router()
    ledger = deps.ledger

    @routes.get(
        "/documents",
        summary="The ledger, one page at a time",
        tags=["documents"],
        security=SECURED,
        responses=responses(DocumentList),
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
        scope = scope_of(routes.context)
        try:
            records, next_cursor = list_in_scope(
                ledger, scope, status=status, prefix=prefix or None, limit=limit, cursor=cursor or None
            )
        except ValueError:
            what = "cursor: pass back the next_cursor of the previous page" if cursor else "query"
            raise BadRequestError(f"invalid {what}") from None
        return DocumentList(documents=records, next_cursor=next_cursor)

    @routes.get(
        "/documents/<source>",
        summary="The ledger record of one source",
        description="The source URI URL-encoded in one segment (s3%3A%2F%2Fbucket%2Fkey), or as is "
        "with its slashes (s3://bucket/key); it is percent-decoded once.",
        tags=["documents"],
        security=SECURED,
        responses=responses(DocumentRecord, e404="No record for this source"),
    )
    def get_document(
        source: Annotated[str, Path(description="The source URI, e.g. s3://bucket/key.")],
    ) -> DocumentRecord:
        uri = unquote(source)
        if not scope_of(routes.context).allows(uri):  # the same answer as a missing record
            raise NotFoundError(f"no document {uri!r} in the ledger")
        try:
            record = ledger.get(uri)
        except ValueError:
            raise BadRequestError("invalid source") from None
        if record is None:
            raise NotFoundError(f"no document {uri!r} in the ledger")
        return record

    return routes
