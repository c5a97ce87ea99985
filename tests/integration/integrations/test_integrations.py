"""The LangChain and LlamaIndex retrievers, with the real libraries, over seeded stores."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ragstream.config import Settings
from ragstream.embeddings import LocalEmbeddings
from ragstream.index import SearchFilter, open_index
from ragstream.query import Retriever

LEAVE = "s3://docs/handbook/leave-policy.md"
REPORT = "s3://docs/finance/q3 report.pdf"


@pytest.fixture(scope="module", params=["qdrant", "faiss"])
def store_retriever(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    embedder: LocalEmbeddings,
    seed_index: Callable[..., int],
) -> Iterator[Retriever]:
    """ragstream's retriever over the seeded documents in a store (qdrant-client's local mode, FAISS)."""
    home: Path = tmp_path_factory.mktemp(f"integrations-{request.param}")
    settings = Settings(home=home, index=request.param, embedding_provider="local", llm="extractive")
    index = open_index(settings)
    seed_index(index, embedder)
    yield Retriever(settings, embedder, index)
    index.close()


def test_an_lcel_chain_grounds_its_prompt_in_the_retrieved_chunks(store_retriever: Retriever) -> None:
    from langchain_core.documents import Document
    from langchain_core.prompts import ChatPromptTemplate
    from langchain_core.runnables import RunnableLambda, RunnablePassthrough

    from ragstream.integrations.langchain import RagstreamRetriever

    retriever = RagstreamRetriever(retriever=store_retriever, top_k=2)

    def sources(docs: list[Document]) -> str:
        return "\n".join(f"[{d.metadata['source']}] {d.page_content}" for d in docs)

    prompt = ChatPromptTemplate.from_template("Answer from these sources:\n{context}\n\nQuestion: {question}")
    chain = (
        {"context": retriever | sources, "question": RunnablePassthrough()}
        | prompt
        | RunnableLambda(lambda p: p.to_string())
    )
    # WHEN the chain runs on a question
    text = chain.invoke("How many days of paid annual leave do employees get?")
    # THEN the prompt holds the chunk that answers it, with its source
    assert f"[{LEAVE}] Employees receive 25 days of paid annual leave" in text
    docs = retriever.invoke("How many days of paid annual leave do employees get?")
    assert len(docs) == 2 and docs[0].metadata["source"] == LEAVE
    assert docs[0].metadata["title"] == "Annual leave" and 0 < docs[0].metadata["score"] <= 1


def test_the_langchain_retriever_takes_the_filters_of_search(store_retriever: Retriever) -> None:
    from ragstream.integrations.langchain import RagstreamRetriever

    def sources(flt: SearchFilter) -> set[str]:
        docs = RagstreamRetriever(retriever=store_retriever, top_k=10, search_filter=flt).invoke("revenue")
        return {d.metadata["source"] for d in docs}

    assert sources(SearchFilter(source_prefix="s3://docs/finance/")) == {REPORT}
    assert sources(SearchFilter(content_type="text/markdown", metadata={"team": "people"})) == {LEAVE}
    assert sources(SearchFilter(allowed_prefixes=[])) == set()


def test_a_llamaindex_query_engine_answers_from_the_retrieved_nodes(store_retriever: Retriever) -> None:
    from llama_index.core.llms import MockLLM
    from llama_index.core.query_engine import RetrieverQueryEngine

    from ragstream.integrations.llamaindex import RagstreamRetriever

    retriever = RagstreamRetriever(
        store_retriever, top_k=2, search_filter=SearchFilter(source_prefix="s3://docs/finance/")
    )
    engine = RetrieverQueryEngine.from_args(retriever, llm=MockLLM())
    # WHEN the engine answers (the mock LLM echoes the prompt it is given)
    response = engine.query("What was the revenue in the third quarter of 2024?")
    # THEN it used the finance chunks only, best first, and the prompt held the revenue figure
    assert [n.node.metadata["source"] for n in response.source_nodes] == [REPORT, REPORT]
    assert response.source_nodes[0].node.metadata["page"] == 2
    assert response.source_nodes[0].score is not None and response.source_nodes[0].score > 0
    assert "18.4 million EUR" in str(response)
