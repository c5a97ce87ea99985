"""HTTP routes and schemas of the query API, shared by the query Lambda and ``ragstream serve``.

One app factory, :func:`build_app`, returns a Powertools ``APIGatewayHttpResolver`` (payload format
2.0) with request/response validation and an OpenAPI document at ``GET /openapi.json``. The Lambda
handler calls ``app.resolve(event, context)``; the local server turns HTTP requests into the same
events.

Before routing, a gate answers 413, 401 or 415 (see :mod:`.resolver`); ``/health``,
``/openapi.json``, the web page and CORS pre-flights are open. The caller's
:class:`~ragstream.access.Scope` is then ANDed into every read of every route (see ``access.py``):
search hits, answers and citations, ledger records and cursors, feedback.

The package, by concern:

- :mod:`.schemas`: the request and response models.
- :mod:`.resolver`: the gate and the per-request state (:class:`QueryResolver`).
- :mod:`.errors`: the error answers.
- route groups, one ``Router`` each: :mod:`.query` (search, ask), :mod:`.documents` (the ledger),
  :mod:`.feedback` (feedback and its sinks), :mod:`.ops` (health, OpenAPI), :mod:`.page` (the web page).
- :mod:`.app`: :func:`build_app`, which composes them.
"""

from __future__ import annotations

from .app import app_from_settings, build_app
from .feedback import FEEDBACK_SCORE, FeedbackSink, log_feedback, tracing_feedback
from .resolver import API_KEY_HEADER, QueryResolver
from .schemas import Feedback, FeedbackResult

__all__ = [
    "API_KEY_HEADER",
    "FEEDBACK_SCORE",
    "Feedback",
    "FeedbackResult",
    "FeedbackSink",
    "QueryResolver",
    "app_from_settings",
    "build_app",
    "log_feedback",
    "tracing_feedback",
]
