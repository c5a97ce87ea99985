"""``POST /search`` and ``POST /ask``: the caller's scope is ANDed into every search and answer."""

from __future__ import annotations

from aws_lambda_powertools.event_handler.api_gateway import Router

from .deps import Deps
from .resolver import scope_of
from .schemas import SECURED, AskRequest, ScopedAnswer, SearchRequest, SearchResponse, responses


def _trace_keys(body: SearchRequest | AskRequest) -> dict[str, str]:
    """The user and session ids the client sent (only those), for the request's trace."""
    return {k: v for k, v in (("user_id", body.user_id), ("session_id", body.session_id)) if v}


def router(deps: Deps) -> Router:
    """The query routes over ``deps.retriever``; ``/ask`` signs a feedback token for its asker."""
    routes = Router()
    retriever, signer = deps.retriever, deps.signer

    @routes.post(
        "/search",
        summary="The top chunks for a query",
        tags=["query"],
        security=SECURED,
        responses=responses(SearchResponse),
    )
    def search(body: SearchRequest) -> SearchResponse:
        flt = body.filter.to_search_filter() if body.filter else None
        scope = scope_of(routes.context)
        hits = retriever.search(body.query, top_k=body.top_k, flt=flt, scope=scope, **_trace_keys(body))
        return SearchResponse(query=body.query, hits=hits)

    @routes.post(
        "/ask",
        summary="An answer with numbered citations",
        tags=["query"],
        security=SECURED,
        responses=responses(ScopedAnswer),
    )
    def ask(body: AskRequest) -> ScopedAnswer:
        scope = scope_of(routes.context)
        flt = body.filter.to_search_filter() if body.filter else None
        answer = retriever.ask(body.question, top_k=body.top_k, flt=flt, scope=scope, **_trace_keys(body))
        token = signer.token(answer.trace_id, scope) if answer.trace_id else None
        return ScopedAnswer(**answer.model_dump(), feedback_token=token)

    return routes
