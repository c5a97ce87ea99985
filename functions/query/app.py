"""Query Lambda: API Gateway HTTP API (payload 2.0) events -> the query API of ``ragstream.api``.

Settings and secrets are resolved, and the clients (Qdrant, embedder, chat model, ledger) built,
once per container at import; every invocation reuses them.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.typing import LambdaContext

from ragstream.api import app_from_settings
from ragstream.config import get_settings
from ragstream.tracing import build_tracer, flush_after

logger = Logger(service="ragstream-query")
copy_config_to_registered_loggers(source_logger=logger, include={"ragstream"})
settings = get_settings().resolve_secrets()
tracer = build_tracer(settings)
app = app_from_settings(settings, tracer=tracer)


@logger.inject_lambda_context
@flush_after(tracer)  # traces and feedback scores leave before the container freezes (bounded)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
