"""Fuzz the OpenAPI document with schemathesis against the real local server: no request, valid or not,
may get a 5xx. Bounded: 25 examples per operation and generation mode, only 127.0.0.1.

The document is the one the app generates (the server's ``GET /openapi.json`` answers the same, checked
below); it is loaded at import because schemathesis' lazy ``from_fixture`` does not work with pytest 9.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from ragstream.api import build_app
from ragstream.config import Settings

API_KEY = "test-api-key"  # a placeholder, the one the test app of conftest.py requires


def _document() -> dict[str, Any]:
    app = build_app(
        None,
        None,
        Settings(
            api_key=API_KEY,
            llm="extractive",
            embedding_provider="local",  # type: ignore[arg-type]
            openai_api_key=None,
        ),
    )
    result = app.resolve(
        {
            "version": "2.0",
            "rawPath": "/openapi.json",
            "rawQueryString": "",
            "headers": {},
            "requestContext": {"http": {"method": "GET", "path": "/openapi.json"}, "stage": "$default"},
        },
        None,
    )
    return json.loads(result["body"])


DOCUMENT = _document()
schema = schemathesis.openapi.from_dict(DOCUMENT)
schema.config.generation.update(modes=["positive", "negative"], max_examples=25, database="none")


def test_the_server_serves_this_document(live_server: str) -> None:
    assert httpx.get(f"{live_server}/openapi.json").json() == DOCUMENT


@pytest.mark.timeout(120)
@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_server_errors(case: Any, live_server: str) -> None:
    assert live_server.startswith("http://127.0.0.1:")
    case.call_and_validate(
        base_url=live_server, headers={"x-api-key": API_KEY}, checks=[not_a_server_error], timeout=30
    )
