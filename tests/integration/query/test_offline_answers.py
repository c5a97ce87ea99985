"""The offline answer through the real pipeline: files ingested with the local model into the embedded
store, questions answered with no LLM. An answerable question is answered from the right document
and cited to it; its twin, on the same topic but asking for a fact no document holds, is not
answered, although the documents it is about are retrieved.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ragstream.config import Settings
from ragstream.embeddings import LocalEmbeddings
from ragstream.ingest import Pipeline
from ragstream.query import NO_ANSWER, Retriever

DOCS = {
    "northwind-q2-2024.md": (
        "# Northwind Labs — Second Quarter 2024 Report\n\n"
        "## Results\n\n"
        "Revenue for the quarter was 31.5 million EUR, up 6 percent year over year. "
        "Gross margin reached 68 percent.\n\n"
        "## People\n\n"
        "The Company employed 420 people at the end of June.\n"
    ),
    "northwind-q3-2024.md": (
        "# Northwind Labs — Third Quarter 2024 Report\n\n"
        "## Results\n\n"
        "Revenue for the quarter was 34.2 million EUR, up 9 percent year over year. "
        "Gross margin improved to 71 percent thanks to lower hosting costs.\n\n"
        "## People\n\n"
        "The Company employed 455 people at the end of September. "
        "Sara Lind joined as chief financial officer in August.\n"
    ),
    "kestrel-k2-drone.md": (
        "# Kestrel K2 Drone — Product Sheet\n\n"
        "## Specifications\n\n"
        "The K2 flies for up to 34 minutes on one battery and weighs 895 grams. "
        "Its camera records video at 60 frames per second.\n\n"
        "## Warranty\n\n"
        "The K2 comes with a two year warranty.\n"
    ),
}

#: (question, the document that answers it, a fact the answer must hold)
ANSWERABLE = [
    ("What was Northwind's revenue in the third quarter of 2024?", "northwind-q3-2024.md", "34.2 million"),
    ("What was Northwind's revenue in Q2 2024?", "northwind-q2-2024.md", "31.5 million"),
    ("Who joined Northwind as chief financial officer?", "northwind-q3-2024.md", "Sara Lind"),
    ("How long does the Kestrel K2 fly on one battery?", "kestrel-k2-drone.md", "34 minutes"),
]
#: (question, the document it is about: retrieved, but silent on what is asked)
UNANSWERABLE = [
    ("What was Northwind's revenue in the third quarter of 2023?", "northwind-q3-2024.md"),
    ("What was Northwind's revenue in the fourth quarter of 2024?", "northwind-q3-2024.md"),
    ("Who joined Northwind as chief technology officer?", "northwind-q3-2024.md"),
    ("How long does the Kestrel K3 fly on one battery?", "kestrel-k2-drone.md"),
    ("How much does the Kestrel K2 cost in Japan?", "kestrel-k2-drone.md"),
]


@pytest.fixture(scope="module")
def retriever(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Retriever]:
    docs = tmp_path_factory.mktemp("docs")
    for name, text in DOCS.items():
        (docs / name).write_text(text)
    home = tmp_path_factory.mktemp("home")
    settings = Settings(home=home, llm="extractive", embedding_provider="local", openai_api_key=None)
    embedder = LocalEmbeddings()
    pipeline = Pipeline.from_settings(settings, embedder=embedder)
    assert {o.status for o in pipeline.sync(str(docs))} == {"indexed"}
    retriever = Retriever.from_settings(settings, embedder=embedder, index=pipeline.index)
    assert retriever.chat is None  # the offline answerer
    yield retriever
    pipeline.index.close()


@pytest.mark.parametrize(("question", "doc", "fact"), ANSWERABLE)
def test_an_answerable_question_is_answered_and_cited_to_its_document(
    retriever: Retriever, question: str, doc: str, fact: str
) -> None:
    answer = retriever.ask(question)
    assert answer.grounded, answer.answer
    assert fact in answer.answer
    assert answer.citations[0].source.endswith("/" + doc)
    assert fact in answer.citations[0].snippet  # the citation quotes the sentence it supports
    payload: dict[str, Any] = answer.model_dump(mode="json")
    assert payload["grounding"] == "key_terms" and payload["model"] == "extractive"


@pytest.mark.parametrize(("question", "doc"), UNANSWERABLE)
def test_a_plausible_but_absent_fact_is_not_answered(retriever: Retriever, question: str, doc: str) -> None:
    # the document the question is about is retrieved, with a sentence close to the question...
    hits = retriever.search(question)
    assert any(h.source.endswith("/" + doc) for h in hits)
    # ...and yet the answerer says the documents do not answer
    answer = retriever.ask(question)
    assert answer.answer == NO_ANSWER
    assert answer.grounded is False and answer.citations == []
    assert answer.model_dump(mode="json")["grounding"] == "none"


def test_the_period_picks_the_document(retriever: Retriever) -> None:
    """Two reports alike but for their quarter: the answer cites only the one asked about."""
    answer = retriever.ask("What gross margin did Northwind report for the third quarter of 2024?")
    assert answer.grounded and "71 percent" in answer.answer and "68 percent" not in answer.answer
    assert {Path(c.source).name for c in answer.citations} == {"northwind-q3-2024.md"}
