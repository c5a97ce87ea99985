"""The query API's app in process: the gate, path handling, error mapping, CORS; no index, no model.

The retriever and ledger here are small stand-ins that return or raise what a test needs; the HTTP
and Lambda paths over a real index are in tests/integration/test_api_*.py.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from ragstream.api import QueryResolver, build_app
from ragstream.config import Settings
from ragstream.errors import ConfigError, IndexUnavailable
from ragstream.model import Answer, DocumentRecord, SearchHit, Status
from ragstream.server import LocalContext, to_event

KEY = "test-api-key"  # a placeholder, not a secret


@dataclass
class _Index:
    collection: str = "unit"

    def ping(self) -> None:
        """Reachable."""


@dataclass
class StubRetriever:
    """Answers from a fixed hit, or raises ``error``."""

    error: Exception | None = None
    chat: Any = None
    index: _Index = field(default_factory=_Index)
    calls: list[tuple[str, int | None, Any]] = field(default_factory=list)

    def search(
        self, query: str, *, top_k: int | None = None, flt: Any = None, scope: Any = None
    ) -> list[SearchHit]:
        if self.error:
            raise self.error
        self.calls.append((query, top_k, flt))
        return [
            SearchHit(id="1", text="Employees receive 25 days.", score=0.9, source="s3://b/leave.md", page=2)
        ]

    def ask(self, question: str, *, top_k: int | None = None, flt: Any = None, scope: Any = None) -> Answer:
        if self.error:
            raise self.error
        return Answer(
            question=question, answer="25 days [1].", citations=[], grounded=True, model="extractive"
        )


@dataclass
class StubLedger:
    records: dict[str, DocumentRecord] = field(default_factory=dict)

    def get(self, source: str) -> DocumentRecord | None:
        return self.records.get(source)

    def list(
        self,
        *,
        status: Status | None = None,
        prefix: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> tuple[list[DocumentRecord], str | None]:
        if cursor == "bad":
            raise ValueError("invalid ledger cursor 'bad'")
        return [r for r in self.records.values() if status is None or r.status == status][:limit], None


def make_app(retriever: StubRetriever | None = None, **overrides: Any) -> QueryResolver:
    settings = Settings(
        **{
            "api_key": KEY,
            "llm": "extractive",
            "embedding_provider": "local",
            "openai_api_key": None,
            "max_body_bytes": 2048,
            **overrides,
        }
    )
    ledger = StubLedger(
        {"s3://b/a/report 1.pdf": DocumentRecord(source="s3://b/a/report 1.pdf", status=Status.INDEXED)}
    )
    return build_app(retriever or StubRetriever(), ledger, settings)  # type: ignore[arg-type]


def call(
    app: QueryResolver,
    method: str,
    target: str,
    body: Any = None,
    *,
    key: str | None = KEY,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
) -> tuple[int, dict[str, str], Any]:
    hdrs = [("Content-Type", "application/json")] if body is not None or raw is not None else []
    if key is not None:
        hdrs.append(("X-Api-Key", key))
    hdrs += list((headers or {}).items())
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
    result = app.resolve(to_event(method, target, hdrs, data), LocalContext())
    text = result.get("body") or ""
    try:
        payload = json.loads(text)
    except json.JSONDecodeError:
        payload = text
    return result["statusCode"], {k.lower(): v for k, v in (result.get("headers") or {}).items()}, payload


# -- the gate ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", [None, "", "wrong", KEY + "x", KEY.upper()])
def test_missing_or_wrong_key_is_401_before_validation(key: str | None) -> None:
    # GIVEN an app that requires a key, WHEN a request without the right one (and a bad body) comes
    status, _, body = call(make_app(), "POST", "/search", {"top_k": 0}, key=key)
    # THEN 401, not 422: an anonymous caller learns nothing about the schema
    assert status == 401
    assert body == {"statusCode": 401, "message": "missing or wrong x-api-key header"}


@pytest.mark.parametrize("target", ["/health", "/openapi.json"])
def test_health_and_openapi_are_open(target: str) -> None:
    status, _, _ = call(make_app(), "GET", target, key=None)
    assert status == 200


def test_no_key_configured_means_open() -> None:
    app = make_app(api_key=None)
    assert app.is_open
    assert call(app, "POST", "/search", {"query": "leave"}, key=None)[0] == 200


def test_body_over_the_limit_is_413_also_when_base64() -> None:
    app = make_app()
    big = {"query": "x" * 3000}
    assert call(app, "POST", "/search", big)[0] == 413
    event = to_event(
        "POST",
        "/search",
        [("content-type", "application/json"), ("x-api-key", KEY)],
        json.dumps(big).encode(),
    )
    event["body"] = base64.b64encode(event["body"].encode()).decode()
    event["isBase64Encoded"] = True
    result = app.resolve(event, LocalContext())
    assert result["statusCode"] == 413
    assert "limit is 2048 bytes" in json.loads(result["body"])["message"]


# -- validation ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "loc"),
    [
        ({}, 422, ["body", "query"]),
        ({"query": ""}, 422, ["body", "query"]),
        ({"query": 3}, 422, ["body", "query"]),
        ({"query": "x", "top_k": 0}, 422, ["body", "top_k"]),
        ({"query": "x", "top_k": 101}, 422, ["body", "top_k"]),
        ({"query": "x", "top_k": "many"}, 422, ["body", "top_k"]),
        ({"query": "x", "filter": {"owner": "me"}}, 422, ["body", "filter", "owner"]),
        ({"query": "x", "filter": {"metadata": {"a.b": "c"}}}, 422, ["body", "filter", "metadata", "a.b"]),
        ({"query": "x", "extra": 1}, 422, ["body", "extra"]),
    ],
)
def test_invalid_search_names_the_field(body: dict[str, Any], status: int, loc: list[str]) -> None:
    code, _, payload = call(make_app(), "POST", "/search", body)
    assert code == status
    assert payload["detail"][0]["loc"][: len(loc)] == loc


def test_malformed_json_is_400() -> None:
    code, _, payload = call(make_app(), "POST", "/search", raw=b'{"query": ')
    assert code == 400
    assert payload["detail"][0]["type"] == "json_invalid"


def test_filter_reaches_the_retriever() -> None:
    retriever = StubRetriever()
    flt = {"source_prefix": "s3://b/a/", "content_type": "application/pdf", "metadata": {"team": "people"}}
    code, _, _ = call(make_app(retriever), "POST", "/search", {"query": "leave", "top_k": 7, "filter": flt})
    assert code == 200
    _, top_k, got = retriever.calls[0]
    assert top_k == 7
    assert got.model_dump(exclude={"allowed_prefixes"}) == flt
    assert got.allowed_prefixes is None  # an unscoped key: the core adds no restriction


# -- documents -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    ["/documents/s3%3A%2F%2Fb%2Fa%2Freport%201.pdf", "/documents/s3://b/a/report%201.pdf"],
    ids=["one-segment", "greedy"],
)
def test_document_path_forms(target: str) -> None:
    code, _, payload = call(make_app(), "GET", target)
    assert code == 200
    assert payload["source"] == "s3://b/a/report 1.pdf"


def test_unknown_document_is_404_and_bad_cursor_400() -> None:
    app = make_app()
    assert call(app, "GET", "/documents/s3://b/nothing")[0] == 404
    code, _, payload = call(app, "GET", "/documents?cursor=bad")
    assert code == 400
    assert "cursor" in payload["message"]
    assert call(app, "GET", "/documents?status=lost")[0] == 422
    assert call(app, "GET", "/documents?limit=0")[0] == 422


# -- errors of ours ------------------------------------------------------------------------------------------


def test_health_of_an_index_that_cannot_be_opened_is_a_500_with_the_cause_logged(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from ragstream.embeddings import OpenAIEmbeddings
    from ragstream.index import FirstUseIndex
    from ragstream.query import Retriever

    # GIVEN the real retriever on a store that is opened on first use, and cannot be (a bad URL)
    settings = Settings(home=tmp_path, index="weaviate", index_url="ftp://weaviate.example")
    embedder = OpenAIEmbeddings(model="text-embedding-3-small", api_key="sk-unused")  # never called
    app = make_app(Retriever(settings, embedder, FirstUseIndex(settings)))
    # WHEN the health check runs THEN it is a misconfiguration (500), not a "degraded" outage,
    # and the log names the cause while the reply does not
    code, _, payload = call(app, "GET", "/health", key=None)
    assert code == 500 and "misconfigured" in payload["message"]
    assert "ftp://" not in json.dumps(payload)
    assert "RAGSTREAM_INDEX_URL must be an http(s) URL" in caplog.text


def test_transient_error_is_503_with_retry_after() -> None:
    code, headers, payload = call(
        make_app(StubRetriever(IndexUnavailable("qdrant down at 10.0.0.1"))),
        "POST",
        "/search",
        {"query": "x"},
    )
    assert code == 503
    assert headers["retry-after"] == "5"
    assert "10.0.0.1" not in json.dumps(payload)


@pytest.mark.parametrize(
    "error", [ConfigError("RAGSTREAM_QDRANT_API_KEY=sk-secret is wrong"), RuntimeError("boom sk-secret")]
)
def test_server_errors_are_safe(error: Exception) -> None:
    code, _, payload = call(make_app(StubRetriever(error)), "POST", "/ask", {"question": "x"})
    assert code == 500
    text = json.dumps(payload)
    assert "sk-secret" not in text
    assert "Traceback" not in text


def test_debug_env_never_leaks_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POWERTOOLS_DEV", "true")
    code, _, payload = call(make_app(StubRetriever(RuntimeError("boom"))), "POST", "/search", {"query": "x"})
    assert code == 500
    assert "Traceback" not in json.dumps(payload)


# -- CORS and feedback ---------------------------------------------------------------------------------------


def test_cors_preflight_and_headers() -> None:
    app = make_app(cors_origins=["https://app.example.com"])
    origin = {"Origin": "https://app.example.com"}
    code, headers, _ = call(
        app, "OPTIONS", "/search", key=None, headers={**origin, "Access-Control-Request-Method": "POST"}
    )
    assert code == 204
    assert headers["access-control-allow-origin"] == "https://app.example.com"
    assert "x-api-key" in headers["access-control-allow-headers"].lower()
    code, headers, _ = call(app, "POST", "/search", {"query": "x"}, key=None, headers=origin)
    assert code == 401
    assert headers["access-control-allow-origin"] == "https://app.example.com"
    _, headers, _ = call(app, "POST", "/search", {"query": "x"}, headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in headers


def test_default_feedback_sink_is_202_not_recorded() -> None:
    code, _, payload = call(make_app(), "POST", "/feedback", {"trace_id": "t-1", "score": 1})
    assert code == 202
    assert payload == {"recorded": False, "reason": "tracing is not configured"}
    assert call(make_app(), "POST", "/feedback", {"trace_id": "t-1", "score": 2})[0] == 422


# -- the event the local server makes ------------------------------------------------------------------------


def test_to_event_shape() -> None:
    event = to_event(
        "post",
        "/search?a=1&a=2&b=",
        [("Content-Type", "application/json"), ("X-Api-Key", "k"), ("Cookie", "c1=1; c2=2")],
        b'{"q": 1}',
    )
    assert event["version"] == "2.0"
    assert event["rawPath"] == "/search"
    assert event["rawQueryString"] == "a=1&a=2&b="
    assert event["queryStringParameters"] == {"a": "1,2", "b": ""}
    assert event["headers"] == {"content-type": "application/json", "x-api-key": "k"}
    assert event["cookies"] == ["c1=1", "c2=2"]
    assert event["requestContext"]["http"]["method"] == "POST"
    assert event["body"] == '{"q": 1}' and event["isBase64Encoded"] is False
    binary = to_event("POST", "/x", [("content-type", "application/octet-stream")], b"\xff\x00")
    assert binary["isBase64Encoded"] is True
    assert base64.b64decode(binary["body"]) == b"\xff\x00"
