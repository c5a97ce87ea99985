"""The app factory: one resolver, the error answers, and the route groups included into it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..access import Authenticator, FeedbackSigner
from . import documents, feedback, ops, page, query
from .deps import Deps
from .errors import register_errors
from .feedback import FeedbackSink, log_feedback, tracing_feedback
from .resolver import QueryResolver, cors_config

if TYPE_CHECKING:
    from ..config import Settings
    from ..ledger import Ledger
    from ..query import Retriever
    from ..tracing import Tracer


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
    app = QueryResolver(
        auth=auth,
        max_body_bytes=settings.max_body_bytes,
        cors=cors_config(settings),
    )
    deps = Deps(
        retriever=retriever,
        ledger=ledger,
        settings=settings,
        auth=auth,
        signer=FeedbackSigner.from_settings(settings, auth),
        feedback_sink=feedback_sink,
    )
    register_errors(app)
    for routes in (query.router(deps), documents.router(deps), feedback.router(deps), ops.router(deps)):
        app.include_router(routes)
    app.include_router(page.router())
    return app


def app_from_settings(
    settings: Settings, feedback_sink: FeedbackSink | None = None, *, tracer: Tracer | None = None
) -> QueryResolver:
    """The app with its clients (index, embedder, chat model, ledger, tracer) built once from the settings.

    With tracing configured, feedback becomes Langfuse scores unless another sink is given.
    """
    from ..ledger import open_ledger
    from ..query import Retriever
    from ..tracing import build_tracer

    tracer = tracer if tracer is not None else build_tracer(settings)
    if feedback_sink is None:
        feedback_sink = tracing_feedback(tracer) if tracer.enabled else log_feedback
    retriever = Retriever.from_settings(settings, tracer=tracer)
    return build_app(retriever, open_ledger(settings), settings, feedback_sink)
