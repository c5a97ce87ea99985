"""The query API over real HTTP: the local server on an ephemeral port, a collection written with the
real local embedder, a SQLite ledger."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from ragstream.query import NO_ANSWER

API_KEY = "test-api-key"  # a placeholder, the one the test app of conftest.py requires


@pytest.fixture(scope="module")
def http(live_server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server, headers={"x-api-key": API_KEY}, timeout=30) as client:
        yield client


def test_health_is_open_and_reports_the_index(live_server: str) -> None:
    response = httpx.get(f"{live_server}/health")
    assert response.status_code == 200
    assert response.json()["index"] == "reachable"


def test_openapi_document(live_server: str) -> None:
    doc = httpx.get(f"{live_server}/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    assert set(doc["paths"]) == {
        "/search",
        "/ask",
        "/documents",
        "/documents/{source}",
        "/feedback",
        "/health",
    }
    assert doc["components"]["securitySchemes"]["apiKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "x-api-key",
    }
    search = doc["components"]["schemas"]["SearchRequest"]["properties"]
    assert search["top_k"]["anyOf"][0] == {"type": "integer", "maximum": 100, "minimum": 1}


def test_search_returns_chunks_with_text_score_source_page(http: httpx.Client) -> None:
    response = http.post("/search", json={"query": "revenue in the third quarter", "top_k": 2})
    assert response.status_code == 200
    hits = response.json()["hits"]
    assert len(hits) == 2
    best = hits[0]
    assert best["source"] == "s3://docs/finance/q3 report.pdf"
    assert best["page"] == 2
    assert "18.4 million EUR" in best["text"]
    assert hits[0]["score"] >= hits[1]["score"]


@pytest.mark.parametrize(
    ("flt", "sources"),
    [
        ({"source_prefix": "s3://docs/handbook/"}, {"s3://docs/handbook/leave-policy.md"}),
        ({"source_prefix": "s3://docs/finance/q3 report.pdf"}, {"s3://docs/finance/q3 report.pdf"}),
        ({"content_type": "application/pdf"}, {"s3://docs/finance/q3 report.pdf"}),
        ({"metadata": {"team": "platform"}}, {"s3://docs/engineering/adr-007-vector-database.md"}),
        ({"metadata": {"team": "nobody"}}, set()),
        (
            {"content_type": "text/markdown", "metadata": {"team": "people"}},
            {"s3://docs/handbook/leave-policy.md"},
        ),
    ],
)
def test_search_filters(http: httpx.Client, flt: dict[str, Any], sources: set[str]) -> None:
    response = http.post("/search", json={"query": "what did we decide", "top_k": 10, "filter": flt})
    assert response.status_code == 200
    assert {h["source"] for h in response.json()["hits"]} == sources


def test_ask_answers_with_numbered_citations(http: httpx.Client) -> None:
    response = http.post("/ask", json={"question": "How many days of paid annual leave do employees get?"})
    assert response.status_code == 200
    answer = response.json()
    assert answer["grounded"] is True
    assert answer["grounding"] == "key_terms"  # extractive: quoted on its key terms, not verified
    assert "25 days" in answer["answer"]
    cited = {c["n"]: c for c in answer["citations"]}
    assert "[1]" in answer["answer"] and 1 in cited
    assert cited[1]["source"] == "s3://docs/handbook/leave-policy.md"
    assert {"source", "page", "snippet", "score"} <= set(cited[1])


def test_ask_says_so_when_the_sources_do_not_answer(http: httpx.Client) -> None:
    response = http.post(
        "/ask",
        json={
            "question": "Who won the football world cup in 1954?",
            "filter": {"metadata": {"team": "finance"}},
        },
    )
    assert response.status_code == 200
    answer = response.json()
    assert answer["grounded"] is False and answer["grounding"] == "none"
    assert answer["answer"] == NO_ANSWER
    assert answer["citations"] == []


def test_documents_paginate_and_filter(http: httpx.Client) -> None:
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = http.get("/documents", params=params).json()
        assert len(page["documents"]) <= 2
        seen += [d["source"] for d in page["documents"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 5 and seen == sorted(seen)
    failed = http.get("/documents", params={"status": "failed"}).json()["documents"]
    assert [(d["source"], d["error_kind"]) for d in failed] == [
        ("s3://docs/broken/scan.pdf", "EncryptedDocument")
    ]


@pytest.mark.parametrize("form", ["encoded", "greedy"])
def test_document_by_source(http: httpx.Client, form: str) -> None:
    source = "s3://docs/finance/q3 report.pdf"
    path = quote(source, safe="") if form == "encoded" else quote(source, safe="/:")
    response = http.get(f"/documents/{path}")
    assert response.status_code == 200
    assert response.json()["source"] == source
    assert response.json()["chunks"] == 3
    assert http.get("/documents/" + quote("s3://docs/missing.pdf", safe="")).status_code == 404


def test_feedback_reaches_the_sink(http: httpx.Client, feedback_sink: Any) -> None:
    response = http.post("/feedback", json={"trace_id": "abc123", "score": 0, "comment": "wrong page"})
    assert response.status_code == 202
    assert response.json() == {"recorded": True, "reason": None}
    assert feedback_sink.received[-1].model_dump() == {
        "trace_id": "abc123",
        "feedback_token": None,
        "score": 0.0,
        "comment": "wrong page",
    }


# -- a client's mistakes: a clear 4xx, never a 500 ---------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "field"),
    [
        ("POST", "/search", {"content": b'{"query": "x",'}, 400, None),
        ("POST", "/search", {"content": b"[1, 2]"}, 422, None),
        ("POST", "/search", {"content": b'"just a string"'}, 422, None),
        ("POST", "/search", {"json": {}}, 422, "query"),
        ("POST", "/search", {"json": {"query": ["a"]}}, 422, "query"),
        ("POST", "/search", {"json": {"query": "x", "top_k": 0}}, 422, "top_k"),
        ("POST", "/search", {"json": {"query": "x", "top_k": 101}}, 422, "top_k"),
        ("POST", "/search", {"json": {"query": "x", "top_k": 2.5}}, 422, "top_k"),
        ("POST", "/search", {"json": {"query": "x", "filter": {"tag": "a"}}}, 422, "filter"),
        (
            "POST",
            "/search",
            {"json": {"query": "x", "filter": {"metadata": {"k": {"nested": 1}}}}},
            422,
            "filter",
        ),
        ("POST", "/ask", {"json": {"query": "x"}}, 422, "question"),
        ("POST", "/ask", {"json": {"question": "x", "top_k": -1}}, 422, "top_k"),
        ("POST", "/feedback", {"json": {"trace_id": "t"}}, 422, "score"),
        ("POST", "/feedback", {"json": {"trace_id": "t", "score": "good"}}, 422, "score"),
        ("GET", "/documents?limit=5000", {}, 422, "limit"),
        ("GET", "/documents?status=lost", {}, 422, "status"),
        ("GET", "/documents?cursor=A", {}, 400, None),
        ("GET", "/nowhere", {}, 404, None),
    ],
)
def test_bad_requests(
    http: httpx.Client, method: str, path: str, kwargs: dict[str, Any], status: int, field: str | None
) -> None:
    headers = {"content-type": "application/json"} if "content" in kwargs else None
    response = http.request(method, path, headers=headers, **kwargs)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["statusCode"] == status
    if field:
        assert any(field in d["loc"] for d in body["detail"])


def test_huge_body_is_413_without_reading_it(live_server: str) -> None:
    # GIVEN a body far over the limit (4096 bytes here), announced by its Content-Length
    host, port = live_server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"x-api-key: " + API_KEY.encode() + b"\r\nContent-Length: 100000000\r\n\r\n{"
        )
        # WHEN only the headers and one byte were sent, THEN the answer is already there
        chunks = []
        while chunk := sock.recv(4096):  # the server closes the connection after the answer
            chunks.append(chunk)
    reply = b"".join(chunks).decode()
    assert reply.startswith("HTTP/1.1 413")
    assert "limit is 4096 bytes" in reply


def test_body_over_limit(http: httpx.Client) -> None:
    response = http.post("/search", json={"query": "x" * 5000})
    assert response.status_code == 413


@pytest.mark.parametrize("key", [None, "wrong-key"])
def test_api_key_required(live_server: str, key: str | None) -> None:
    headers = {"x-api-key": key} if key else {}
    for method, path in [
        ("POST", "/search"),
        ("POST", "/ask"),
        ("GET", "/documents"),
        ("GET", "/documents/x"),
        ("POST", "/feedback"),
    ]:
        response = httpx.request(method, f"{live_server}{path}", headers=headers, json={"query": "x"})
        assert response.status_code == 401, (method, path)
