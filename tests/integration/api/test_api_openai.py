"""``POST /ask`` with the chat model: the openai SDK (chat.py) against the local OpenAI peer server."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ragstream.api import build_app
from ragstream.config import Settings
from ragstream.embeddings import LocalEmbeddings
from ragstream.index import VectorIndex
from ragstream.ledger.sqlite import SQLiteLedger
from ragstream.query import NO_ANSWER, Retriever
from ragstream.server import make_server

API_KEY = "test-api-key"  # a placeholder, not a secret
_SOURCE = re.compile(r'^<source n="(\d+)" from="([^"]+)"(?: page="(\d+)")?', re.MULTILINE)


def prompt_of(body: dict[str, Any]) -> str:
    return "\n".join(str(m.get("content") or "") for m in body["messages"])


def cite_revenue(body: dict[str, Any]) -> str:
    """Answer like a model that follows the prompt: cite the source that holds the revenue figure."""
    for n, source, page in _SOURCE.findall(prompt_of(body)):
        if source == "s3://docs/finance/q3 report.pdf" and page == "2":
            return f"Revenue in Q3 2024 was 18.4 million EUR [{n}]."
    return NO_ANSWER


@pytest.fixture
def chat_api(
    openai_server: Any, embedder: LocalEmbeddings, seeded_index: VectorIndex, seeded_ledger: SQLiteLedger
) -> Iterator[str]:
    settings = Settings(
        api_key=API_KEY,
        llm="openai",
        embedding_provider="local",
        openai_api_key="sk-placeholder",
        openai_base_url=f"{openai_server.url}/v1",
        openai_max_retries=0,
        openai_timeout=10,
    )
    retriever = Retriever.from_settings(settings, embedder=embedder, index=seeded_index)
    server = make_server(build_app(retriever, seeded_ledger, settings), "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.url
    server.shutdown()
    server.server_close()


def ask(url: str, question: str) -> httpx.Response:
    return httpx.post(
        f"{url}/ask", json={"question": question, "top_k": 4}, headers={"x-api-key": API_KEY}, timeout=30
    )


def test_prompt_carries_numbered_sources_and_citations_map_back(openai_server: Any, chat_api: str) -> None:
    # GIVEN a chat model that cites the source holding the revenue figure
    openai_server.chat_reply = cite_revenue
    # WHEN a question is asked
    response = ask(chat_api, "What was the revenue in the third quarter of 2024?")
    # THEN the prompt numbered the retrieved chunks with source and page
    assert response.status_code == 200, response.text
    prompt = prompt_of(openai_server.requests_to("/v1/chat/completions")[-1].body)
    numbered = _SOURCE.findall(prompt)
    assert [int(n) for n, _, _ in numbered] == [1, 2, 3, 4]
    assert ("s3://docs/finance/q3 report.pdf", "2") in {(s, p) for _, s, p in numbered}
    assert "Question: What was the revenue in the third quarter of 2024?" in prompt
    # AND the citation of the reply maps to that source and page
    answer = response.json()
    assert answer["grounded"] is True
    assert answer["model"] == "gpt-4o-mini"
    [citation] = answer["citations"]
    assert f"[{citation['n']}]" in answer["answer"]
    assert (citation["source"], citation["page"]) == ("s3://docs/finance/q3 report.pdf", 2)
    assert "18.4 million EUR" in citation["snippet"]


def test_model_says_the_sources_do_not_answer(openai_server: Any, chat_api: str) -> None:
    openai_server.chat_reply = lambda body: NO_ANSWER
    answer = ask(chat_api, "Who won the football world cup in 1954?").json()
    assert answer == {**answer, "answer": NO_ANSWER, "grounded": False, "citations": []}


def test_provider_failure_is_503_with_retry_after(openai_server: Any, chat_api: str) -> None:
    openai_server.fail(503, times=None)
    response = ask(chat_api, "What was the revenue?")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert "sk-placeholder" not in response.text


def test_a_slow_model_gives_the_apps_json_503_within_the_timeout(
    openai_server: Any, embedder: LocalEmbeddings, seeded_index: VectorIndex, seeded_ledger: SQLiteLedger
) -> None:
    # GIVEN the query function's upstream settings (no retries inside a request), scaled down 10x,
    # and a chat model that answers later than the timeout
    settings = Settings(
        api_key=API_KEY,
        llm="openai",
        embedding_provider="local",
        openai_api_key="sk-placeholder",
        openai_base_url=f"{openai_server.url}/v1",
        openai_max_retries=0,
        openai_timeout=1.0,
    )
    openai_server.delay = 3.0
    retriever = Retriever.from_settings(settings, embedder=embedder, index=seeded_index)
    server = make_server(build_app(retriever, seeded_ledger, settings), "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        # WHEN a question is asked
        started = time.perf_counter()
        response = ask(server.url, "What was the revenue?")
        elapsed = time.perf_counter() - started
    finally:
        openai_server.delay = 0.0
        server.shutdown()
        server.server_close()
    # THEN the app answers its own JSON 503 once the timeout passes, well before the model would have
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/json") and response.json()
    assert elapsed < 2.5
