"""``POST /feedback``, and the sinks that record a feedback (Langfuse when tracing is configured).

A restricted caller (an API key or token bound to prefixes) scores only answers given to its own
scope: it sends back the ``feedback_token`` that ``/ask`` signed for it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.exceptions import ForbiddenError

from .deps import Deps
from .resolver import scope_of
from .schemas import SECURED, Feedback, FeedbackResult, responses

if TYPE_CHECKING:
    from ..tracing import Tracer

log = logging.getLogger("ragstream.api")

#: Name of the Langfuse score that ``POST /feedback`` creates.
FEEDBACK_SCORE = "user-feedback"


class FeedbackSink(Protocol):
    """Records a feedback (Langfuse when tracing is configured)."""

    def __call__(self, feedback: Feedback) -> FeedbackResult: ...


def log_feedback(feedback: Feedback) -> FeedbackResult:
    """The default sink: log the feedback; nothing is recorded without tracing."""
    log.info("feedback for trace %s: score %s", feedback.trace_id, feedback.score)
    return FeedbackResult(recorded=False, reason="tracing is not configured")


def tracing_feedback(tracer: Tracer) -> FeedbackSink:
    """A sink that records each feedback as a Langfuse score on the answer's trace."""

    def sink(feedback: Feedback) -> FeedbackResult:
        from ..tracing import is_trace_id

        if not is_trace_id(feedback.trace_id):
            return FeedbackResult(recorded=False, reason="trace_id is not a trace id this service returned")
        if tracer.score(feedback.trace_id, FEEDBACK_SCORE, feedback.score, feedback.comment):
            return FeedbackResult(recorded=True)
        return FeedbackResult(recorded=False, reason="the score could not be queued; see the logs")

    return sink


def router(deps: Deps) -> Router:
    """The feedback route, which hands each accepted feedback to ``deps.feedback_sink``."""
    routes = Router()
    signer, sink = deps.signer, deps.feedback_sink

    @routes.post(
        "/feedback",
        summary="A user's score for an answer",
        tags=["feedback"],
        security=SECURED,
        status_code=202,
        responses=responses(FeedbackResult, 202, e403="feedback_token missing or of another scope"),
    )
    def feedback(body: Feedback) -> FeedbackResult:
        scope = scope_of(routes.context)
        if not scope.unrestricted and not signer.verify(body.trace_id, scope, body.feedback_token):
            raise ForbiddenError("feedback_token is missing or is not that of an answer given to this caller")
        return sink(body)

    return routes
