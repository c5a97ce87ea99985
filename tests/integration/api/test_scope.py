"""Who may read what: two scoped keys over HTTP against a real ``ragstream serve``, and JWT claims
through the query Lambda handler.

Key A may read ``s3://docs/finance/``; key B ``s3://docs/handbook/`` and ``s3://docs/broken/``; the
ops key everything. No route may let A read B's chunk, citation, ledger record or trace, whatever
filter or cursor A crafts. The server runs as a subprocess with its key document in a file
(RAGSTREAM_API_KEYS_FILE) and traces to a local Langfuse receiver, so answers carry trace ids.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from ragstream.embeddings import LocalEmbeddings
from ragstream.server import LocalContext
from tests.peers.langfuse_server import LangfuseServer

ROOT = Path(__file__).resolve().parents[3]
KEY_A, KEY_B, KEY_OPS = (f"{name}-{uuid.uuid4().hex}" for name in ("a", "b", "ops"))
FINANCE = "s3://docs/finance/q3 report.pdf"
HANDBOOK = "s3://docs/handbook/leave-policy.md"
ADR = "s3://docs/engineering/adr-007-vector-database.md"
BROKEN = "s3://docs/broken/scan.pdf"
A_SOURCES = {FINANCE}
B_SOURCES = {HANDBOOK, BROKEN}
QUESTIONS = [
    "How many days of paid annual leave do employees get?",
    "What was the revenue in the third quarter?",
    "Which vector database did we choose?",
]


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, embedder: LocalEmbeddings, seed_home: Any
) -> Iterator[str]:
    """``ragstream serve`` on an ephemeral port, with keys A, B and ops, tracing to a local Langfuse."""
    home = seed_home(tmp_path_factory.mktemp("scope-home"), embedder)
    keys = home / "api-keys.json"
    keys.write_text(
        json.dumps(
            {
                "team-a": {"key": KEY_A, "prefixes": ["s3://docs/finance/"]},
                "team-b": {"key": KEY_B, "prefixes": ["s3://docs/handbook/", BROKEN]},
                "ops": {"key": KEY_OPS, "prefixes": None},
            }
        )
    )
    run = uuid.uuid4().hex[:12]
    with LangfuseServer(public_key=f"pk-lf-{run}", secret_key=f"sk-lf-{run}") as langfuse:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("RAGSTREAM_", "LANGFUSE_", "OPENAI_", "AWS_"))
        }
        env.update(
            RAGSTREAM_HOME=str(home),
            RAGSTREAM_API_KEYS_FILE=str(keys),
            RAGSTREAM_LLM="extractive",
            RAGSTREAM_EMBEDDING_PROVIDER="local",
            LANGFUSE_PUBLIC_KEY=str(langfuse.public_key),
            LANGFUSE_SECRET_KEY=str(langfuse.secret_key),
            LANGFUSE_BASE_URL=langfuse.url,
            RAGSTREAM_LANGFUSE_FLUSH_TIMEOUT="1",
        )
        exe = Path(sys.executable).with_name("ragstream")
        proc = subprocess.Popen(
            [str(exe), "serve", "--host", "127.0.0.1", "--port", "0"],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            url = _wait_for_url(proc)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
            assert proc.stderr is not None
            log = proc.stderr.read()
            for key in (KEY_A, KEY_B, KEY_OPS):  # keys are never logged
                assert key not in log
            # the index itself filtered by scope: the core's second check never had to drop a hit
            assert "outside the caller's scope" not in log


def _wait_for_url(proc: subprocess.Popen[str]) -> str:
    assert proc.stderr is not None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line and proc.poll() is not None:
            raise AssertionError(f"ragstream serve exited with {proc.returncode}")
        match = re.search(r"ragstream API on (http://127\.0\.0\.1:\d+)", line)
        if match:
            return match.group(1)
    raise AssertionError("ragstream serve did not start")


def client(url: str, key: str | None) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"x-api-key": key} if key else {}, timeout=60)


@pytest.fixture(scope="module")
def a(server: str) -> Iterator[httpx.Client]:
    with client(server, KEY_A) as c:
        yield c


@pytest.fixture(scope="module")
def b(server: str) -> Iterator[httpx.Client]:
    with client(server, KEY_B) as c:
        yield c


@pytest.fixture(scope="module")
def ops(server: str) -> Iterator[httpx.Client]:
    with client(server, KEY_OPS) as c:
        yield c


# -- authentication ------------------------------------------------------------------------------------------


def test_unknown_or_missing_key_is_refused(server: str) -> None:
    for key in (None, "", KEY_A[:-1], KEY_A + "0", KEY_A.upper(), f"{KEY_A},{KEY_B}"):
        with client(server, key) as c:
            assert c.post("/search", json={"query": "leave"}).status_code == 401


# -- search ----------------------------------------------------------------------------------------------


CRAFTED_FILTERS = [
    None,
    {"source_prefix": "s3://docs/"},
    {"source_prefix": "s3://docs/handbook/"},
    {"source_prefix": HANDBOOK},
    {"source_prefix": "s3://docs/handbook"},
    {"metadata": {"team": "people"}},
    {"content_type": "text/markdown"},
]


@pytest.mark.parametrize("flt", CRAFTED_FILTERS)
@pytest.mark.parametrize("question", QUESTIONS)
def test_search_stays_in_scope(a: httpx.Client, b: httpx.Client, flt: Any, question: str) -> None:
    body: dict[str, Any] = {"query": question, "top_k": 20}
    if flt is not None:
        body["filter"] = flt
    for c, allowed in ((a, A_SOURCES), (b, B_SOURCES)):
        response = c.post("/search", json=body)
        assert response.status_code == 200
        assert {h["source"] for h in response.json()["hits"]} <= allowed


def test_search_finds_what_is_in_scope(a: httpx.Client, b: httpx.Client, ops: httpx.Client) -> None:
    query = {"query": "annual leave days", "top_k": 20}
    assert {h["source"] for h in b.post("/search", json=query).json()["hits"]} == {HANDBOOK}
    assert {h["source"] for h in a.post("/search", json=query).json()["hits"]} == {FINANCE}
    assert {h["source"] for h in ops.post("/search", json=query).json()["hits"]} == {FINANCE, HANDBOOK, ADR}


@pytest.mark.parametrize(
    "body",
    [
        {"query": "leave", "filter": {"allowed_prefixes": ["s3://docs/"]}},
        {"query": "leave", "filter": {"allowed_prefixes": None}},
        {"query": "leave", "allowed_prefixes": ["s3://docs/"]},
        {"query": "leave", "scope": None},
    ],
)
def test_a_request_cannot_set_its_own_scope(a: httpx.Client, body: dict[str, Any]) -> None:
    assert a.post("/search", json=body).status_code == 422


def test_the_openapi_schema_does_not_offer_the_scope(server: str) -> None:
    with client(server, None) as c:
        schema = c.get("/openapi.json").json()
    assert "allowed_prefixes" not in json.dumps(schema)
    assert "feedback_token" in json.dumps(schema["components"]["schemas"]["Feedback"])


# -- ask, citations and feedback ------------------------------------------------------------------------


@pytest.mark.parametrize("question", QUESTIONS)
def test_answers_and_citations_stay_in_scope(a: httpx.Client, b: httpx.Client, question: str) -> None:
    for c, allowed in ((a, A_SOURCES), (b, B_SOURCES)):
        for flt in CRAFTED_FILTERS:
            body: dict[str, Any] = {"question": question, "top_k": 20}
            if flt is not None:
                body["filter"] = flt
            answer = c.post("/ask", json=body).json()
            assert {cite["source"] for cite in answer["citations"]} <= allowed
    b_answer = b.post("/ask", json={"question": QUESTIONS[0]}).json()
    assert "25 days" in b_answer["answer"]
    a_answer = a.post("/ask", json={"question": QUESTIONS[0]}).json()
    assert "25 days" not in a_answer["answer"]


def test_feedback_only_on_answers_of_the_same_scope(
    a: httpx.Client, b: httpx.Client, ops: httpx.Client
) -> None:
    # GIVEN an answer given to B, with its trace id and feedback token
    answer = b.post("/ask", json={"question": QUESTIONS[0]}).json()
    trace_id, token = answer["trace_id"], answer["feedback_token"]
    assert trace_id and token
    a_token = a.post("/ask", json={"question": QUESTIONS[1]}).json()["feedback_token"]
    # WHEN A scores B's trace (without a token, with B's token, with its own token of another trace)
    # THEN it is refused
    for body in (
        {"trace_id": trace_id, "score": 0},
        {"trace_id": trace_id, "score": 0, "feedback_token": token},
        {"trace_id": trace_id, "score": 0, "feedback_token": a_token},
        {"trace_id": trace_id, "score": 0, "feedback_token": token[:-2] + "AA"},
    ):
        assert a.post("/feedback", json=body).status_code == 403
    # AND B needs its token; the ops key (unrestricted) may score any trace
    assert b.post("/feedback", json={"trace_id": trace_id, "score": 1}).status_code == 403
    ok = b.post("/feedback", json={"trace_id": trace_id, "score": 1, "feedback_token": token})
    assert ok.status_code == 202 and ok.json()["recorded"] is True
    assert ops.post("/feedback", json={"trace_id": trace_id, "score": 1}).status_code == 202


# -- the ledger --------------------------------------------------------------------------------------------


def all_pages(c: httpx.Client, **params: Any) -> list[str]:
    sources: list[str] = []
    cursor = None
    for _ in range(50):
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = c.get("/documents", params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        sources += [d["source"] for d in page["documents"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return sources
    raise AssertionError("the cursor never ended")


@pytest.mark.parametrize("limit", [1, 2, 100])
def test_documents_lists_only_the_scope(a: httpx.Client, b: httpx.Client, limit: int) -> None:
    assert all_pages(a, limit=limit) == sorted(A_SOURCES)
    assert all_pages(b, limit=limit) == sorted(B_SOURCES)
    assert all_pages(b, limit=limit, prefix="s3://docs/") == sorted(B_SOURCES)
    assert all_pages(b, limit=limit, prefix="s3://docs/handbook/leave") == [HANDBOOK]
    assert all_pages(a, limit=limit, prefix="s3://docs/handbook/") == []
    assert all_pages(b, limit=limit, status="failed") == [BROKEN]


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        _b64("s3://docs/"),  # the SQLite ledger's own cursor: resume after s3://docs/
        _b64("s3://docs/handbook/"),
        "s1." + _b64(json.dumps([5, None])),  # a listing A does not have
        "s1." + _b64(json.dumps([-1, None])),
        "s1." + _b64(json.dumps(["0", None])),
        "s1.!!!",
    ],
)
def test_a_crafted_cursor_is_refused(a: httpx.Client, cursor: str) -> None:
    response = a.get("/documents", params={"cursor": cursor})
    assert response.status_code == 400


@pytest.mark.parametrize("inner", [_b64("s3://docs/"), _b64("s3://docs/engineering/"), _b64("")])
def test_a_crafted_inner_cursor_stays_in_scope(a: httpx.Client, inner: str) -> None:
    cursor = "s1." + _b64(json.dumps([0, inner]))
    response = a.get("/documents", params={"cursor": cursor, "limit": 100})
    assert response.status_code in (200, 400)
    if response.status_code == 200:
        assert {d["source"] for d in response.json()["documents"]} <= A_SOURCES


def test_document_record_of_another_scope_is_not_found(a: httpx.Client, b: httpx.Client) -> None:
    from urllib.parse import quote

    assert a.get("/documents/" + quote(FINANCE, safe="")).status_code == 200
    for source in (HANDBOOK, BROKEN, "s3://docs/finance/../handbook/leave-policy.md"):
        assert a.get("/documents/" + quote(source, safe="")).status_code == 404
    assert b.get("/documents/" + quote(HANDBOOK, safe="")).status_code == 200
    assert b.get("/documents/" + quote(FINANCE, safe="")).status_code == 404


# -- JWT claims through the query Lambda ------------------------------------------------------------------


@pytest.fixture(scope="module")
def jwt_handler(
    tmp_path_factory: pytest.TempPathFactory, embedder: LocalEmbeddings, seed_home: Any
) -> Iterator[ModuleType]:
    """functions/query/app.py as Lambda loads it, behind the HTTP API's JWT authorizer."""
    home = seed_home(tmp_path_factory.mktemp("jwt-home"), embedder)
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith(("RAGSTREAM_", "LANGFUSE_", "OPENAI_")):
                mp.delenv(name)
        mp.setenv("RAGSTREAM_HOME", str(home))
        mp.setenv("RAGSTREAM_AUTH", "jwt")
        mp.setenv(
            "RAGSTREAM_JWT_GROUP_PREFIXES", json.dumps({"people": ["s3://docs/handbook/"], "ops": None})
        )
        mp.setenv("RAGSTREAM_FEEDBACK_SECRET", uuid.uuid4().hex)
        mp.setenv("RAGSTREAM_LLM", "extractive")
        mp.setenv("RAGSTREAM_EMBEDDING_PROVIDER", "local")
        spec = importlib.util.spec_from_file_location("query_lambda_jwt", ROOT / "functions/query/app.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["query_lambda_jwt"] = module
        spec.loader.exec_module(module)
    yield module
    module.app  # noqa: B018  (kept alive until here)
    sys.modules.pop("query_lambda_jwt", None)


def http_event(name: str, claims: dict[str, Any] | None, **changes: Any) -> dict[str, Any]:
    event = json.loads((ROOT / "events" / f"{name}.json").read_text(encoding="utf-8"))
    event["headers"].pop("x-api-key", None)
    if claims is None:
        event["requestContext"].pop("authorizer", None)
    else:
        event["requestContext"]["authorizer"] = {"jwt": {"claims": claims, "scopes": None}}
    if "body" in changes:
        event["isBase64Encoded"] = False
    event.update(changes)
    return event


def invoke(handler: ModuleType, event: dict[str, Any]) -> tuple[int, Any]:
    result = handler.lambda_handler(event, LocalContext())
    body = result["body"]
    if result.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    return result["statusCode"], json.loads(body)


CLAIMS = {
    # API Gateway hands claims over as text; arrays as "[a b]"
    "groups": {"sub": "u-people", "cognito:groups": "[people other]"},
    "prefixes": {"sub": "u-finance", "ragstream_prefixes": "[s3://docs/finance/]"},
    "json-array": {"sub": "u-finance", "ragstream_prefixes": '["s3://docs/finance/"]'},
}


def search(handler: ModuleType, claims: dict[str, Any] | None, query: str, flt: Any = None) -> Any:
    body: dict[str, Any] = {"query": query, "top_k": 20}
    if flt:
        body["filter"] = flt
    return invoke(handler, http_event("http-search", claims, body=json.dumps(body)))


def test_jwt_claims_scope_the_search(jwt_handler: ModuleType) -> None:
    for flt in (None, {"source_prefix": "s3://docs/"}, {"source_prefix": FINANCE}):
        status, body = search(jwt_handler, CLAIMS["groups"], "revenue in the third quarter", flt)
        assert status == 200 and {h["source"] for h in body["hits"]} <= {HANDBOOK}
    for name in ("prefixes", "json-array"):
        status, body = search(jwt_handler, CLAIMS[name], "annual leave days")
        assert status == 200 and {h["source"] for h in body["hits"]} == {FINANCE}
    _, body = search(jwt_handler, {"sub": "root", "cognito:groups": "[ops]"}, "annual leave days")
    assert {h["source"] for h in body["hits"]} == {FINANCE, HANDBOOK, ADR}


def test_jwt_without_a_known_group_or_prefix_sees_nothing(jwt_handler: ModuleType) -> None:
    for claims in ({"sub": "u"}, {"sub": "u", "cognito:groups": "[other]"}, {"ragstream_prefixes": "[docs]"}):
        status, body = search(jwt_handler, claims, "annual leave days")
        assert status == 200 and body["hits"] == []
        status, page = invoke(jwt_handler, http_event("http-documents", claims))
        assert status == 200 and page["documents"] == []


def test_jwt_mode_documents_a_bearer_token(jwt_handler: ModuleType) -> None:
    status, schema = invoke(jwt_handler, http_event("http-openapi", None))
    assert status == 200
    assert schema["components"]["securitySchemes"]["apiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }


def test_jwt_mode_needs_the_authorizer_claims(jwt_handler: ModuleType) -> None:
    # an API key is no way in when the API is behind the JWT authorizer
    event = http_event("http-search", None)
    event["headers"]["x-api-key"] = "test-api-key"
    assert invoke(jwt_handler, event)[0] == 401


def test_jwt_ask_documents_and_feedback_stay_in_scope(jwt_handler: ModuleType) -> None:
    people = CLAIMS["groups"]
    body = json.dumps({"question": QUESTIONS[1], "top_k": 20})
    status, answer = invoke(jwt_handler, http_event("http-ask", people, body=body))
    assert status == 200 and {c["source"] for c in answer["citations"]} <= {HANDBOOK}
    assert "18.4" not in answer["answer"]
    status, page = invoke(jwt_handler, http_event("http-documents", people))
    assert status == 200 and {d["source"] for d in page["documents"]} == {HANDBOOK}
    from urllib.parse import quote

    for source, code in ((HANDBOOK, 200), (FINANCE, 404)):
        path = "/documents/" + quote(source, safe="")
        event = http_event("http-document", people, rawPath=path)
        event["requestContext"]["http"]["path"] = path
        assert invoke(jwt_handler, event)[0] == code
    feedback = json.dumps({"trace_id": "0" * 32, "score": 1})
    assert invoke(jwt_handler, http_event("http-feedback", people, body=feedback))[0] == 403
