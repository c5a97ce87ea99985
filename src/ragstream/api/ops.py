"""``GET /health`` and ``GET /openapi.json``: open to anyone, for load balancers, monitors and clients."""

from __future__ import annotations

import logging

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn, HTTPBearer

from ..access import Authenticator
from ..errors import ConfigError
from .deps import Deps
from .feedback import log_feedback
from .resolver import API_KEY_HEADER
from .schemas import API_VERSION, Health

log = logging.getLogger("ragstream.api")


def openapi_document(app: APIGatewayHttpResolver, auth: Authenticator) -> str:
    """The OpenAPI document of ``app``, whose one security scheme is what ``auth`` checks."""
    return app.get_openapi_json_schema(
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
    )


def router(deps: Deps) -> Router:
    """The health check over ``deps.retriever``, and the OpenAPI document of the app that includes it."""
    routes = Router()
    retriever, settings, auth = deps.retriever, deps.settings, deps.auth
    records_feedback = deps.feedback_sink is not log_feedback

    @routes.get("/health", summary="Liveness, and whether the index is reachable", tags=["ops"], security=[])
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

    @routes.get("/openapi.json", include_in_schema=False, enable_validation=False)
    def openapi():  # type: ignore[no-untyped-def]  # no annotation: Powertools would validate it
        app = routes.api_resolver
        if not isinstance(app, APIGatewayHttpResolver):  # only served once included in an app
            raise RuntimeError("the ops routes are not included in an app")
        return Response(status_code=200, content_type="application/json", body=openapi_document(app, auth))

    return routes
