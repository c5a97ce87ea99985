"""The query Lambda handler (functions/query/app.py) with the sample HTTP API events of events/.

The events carry the placeholder key "test-api-key", which the handler is given by the environment.
"""

from __future__ import annotations

import base64
import copy
import gzip
import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from ragstream.embeddings import LocalEmbeddings
from ragstream.server import LocalContext

HANDLER = Path(__file__).resolve().parents[3] / "functions" / "query" / "app.py"
EVENTS = Path(__file__).resolve().parents[3] / "events"


def event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / f"{name}.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def handler(
    tmp_path_factory: pytest.TempPathFactory, embedder: LocalEmbeddings, seed_home: Any
) -> Iterator[ModuleType]:
    home = seed_home(tmp_path_factory.mktemp("lambda-home"), embedder)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAGSTREAM_HOME", str(home))
        mp.setenv("RAGSTREAM_API_KEY", "test-api-key")
        mp.setenv("RAGSTREAM_LLM", "extractive")
        mp.setenv("RAGSTREAM_EMBEDDING_PROVIDER", "local")
        for name in (
            "OPENAI_API_KEY",
            "RAGSTREAM_OPENAI_API_KEY",
            "RAGSTREAM_QDRANT_URL",
            "RAGSTREAM_INDEX_URL",
            "RAGSTREAM_LEDGER_TABLE",
        ):
            mp.delenv(name, raising=False)
        spec = importlib.util.spec_from_file_location("query_lambda_app", HANDLER)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["query_lambda_app"] = module
        spec.loader.exec_module(module)
    yield module
    sys.modules.pop("query_lambda_app", None)


def invoke(handler: ModuleType, evt: dict[str, Any]) -> tuple[int, Any]:
    result = handler.lambda_handler(evt, LocalContext())
    body = result["body"]
    if result.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    return result["statusCode"], json.loads(body)


def test_search_event(handler: ModuleType) -> None:
    status, body = invoke(handler, event("http-search"))
    assert status == 200
    assert body["hits"][0]["source"] == "s3://docs/handbook/leave-policy.md"
    assert {h["source"] for h in body["hits"]} == {"s3://docs/handbook/leave-policy.md"}


def test_ask_event(handler: ModuleType) -> None:
    status, body = invoke(handler, event("http-ask"))
    assert status == 200
    assert body["grounded"] is True
    assert "18.4 million EUR" in body["answer"]
    assert any(c["source"] == "s3://docs/finance/q3 report.pdf" and c["page"] == 2 for c in body["citations"])


def test_documents_event(handler: ModuleType) -> None:
    status, body = invoke(handler, event("http-documents"))
    assert status == 200
    assert [d["status"] for d in body["documents"]] == ["indexed", "indexed"]
    assert body["next_cursor"]


@pytest.mark.parametrize("form", ["greedy", "encoded"])
def test_document_event(handler: ModuleType, form: str) -> None:
    evt = event("http-document")
    if form == "encoded":
        evt["rawPath"] = "/documents/s3%3A%2F%2Fdocs%2Ffinance%2Fq3%20report.pdf"
    status, body = invoke(handler, evt)
    assert status == 200
    assert body["source"] == "s3://docs/finance/q3 report.pdf"


def test_health_event(handler: ModuleType) -> None:
    status, body = invoke(handler, event("http-health"))
    assert status == 200
    assert body["index"] == "reachable"


def test_feedback_event_uses_the_default_sink(handler: ModuleType) -> None:
    status, body = invoke(handler, event("http-feedback"))
    assert status == 202
    assert body == {"recorded": False, "reason": "tracing is not configured"}


@pytest.mark.parametrize(
    "name", ["http-search", "http-ask", "http-documents", "http-document", "http-feedback"]
)
def test_events_without_the_key_are_401(handler: ModuleType, name: str) -> None:
    evt = copy.deepcopy(event(name))
    evt["headers"].pop("x-api-key")
    assert invoke(handler, evt)[0] == 401


def test_stage_prefix_is_routed(handler: ModuleType) -> None:
    evt = event("http-document")
    evt["requestContext"]["stage"] = "prod"
    evt["rawPath"] = "/prod" + evt["rawPath"]
    assert invoke(handler, evt)[0] == 200


def test_page_event_returns_the_page_without_a_key(handler: ModuleType) -> None:
    # GIVEN the sample HTTP API event of GET / (no x-api-key: a browser opening the page)
    evt = event("http-page")
    assert "x-api-key" not in evt["headers"]

    # WHEN the query Lambda handles it
    result = handler.lambda_handler(evt, LocalContext())

    # THEN it answers the packaged HTML, as text, with the page's policy
    assert result["statusCode"] == 200
    assert result["isBase64Encoded"] is False
    assert result["headers"]["Content-Type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in result["headers"]["Content-Security-Policy"]
    assert result["body"].startswith("<!doctype html>") and 'src="ui/app.js"' in result["body"]


def test_page_asset_event_is_gzipped_when_accepted(handler: ModuleType) -> None:
    evt = copy.deepcopy(event("http-page-asset"))
    evt["headers"]["accept-encoding"] = "gzip, deflate, br"
    result = handler.lambda_handler(evt, LocalContext())
    assert result["statusCode"] == 200
    assert result["headers"]["Content-Type"] == "text/javascript; charset=utf-8"
    assert result["headers"]["Content-Encoding"] == "gzip" and result["isBase64Encoded"] is True
    script = gzip.decompress(base64.b64decode(result["body"])).decode()
    assert script.startswith("// The ragstream web page")


def test_page_under_a_stage_prefix(handler: ModuleType) -> None:
    evt = copy.deepcopy(event("http-page"))
    evt["requestContext"]["stage"] = "prod"
    evt["rawPath"] = "/prod/"
    result = handler.lambda_handler(evt, LocalContext())
    assert result["statusCode"] == 200 and result["body"].startswith("<!doctype html>")
