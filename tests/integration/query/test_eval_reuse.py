"""``ragstream eval`` keeps a dataset's index between runs while the settings that make its points stay
the same: a second run ingests nothing and scores the same; a chunking change rebuilds it and says so."""

from __future__ import annotations

import json
from pathlib import Path

from ragstream.config import Settings
from ragstream.evaluation import run_beir

DOCS = {
    "d1": ("Hotel limits", "The hotel limit in London is 250 pounds per night for every grade."),
    "d2": ("Annual leave", "Employees get 25 days of annual leave, and 3 more after five years."),
    "d3": ("Expenses", "Receipts for expenses are kept for seven years by the finance team."),
    "d4": ("Laptops", "A new laptop is issued every four years; the old one is wiped and recycled."),
}
QUERIES = {"q1": "How much may a hotel in London cost?", "q2": "How many leave days do I get?"}
QRELS = {"q1": "d1", "q2": "d2"}


def _dataset(root: Path) -> Path:
    dataset = root / "tiny"
    (dataset / "qrels").mkdir(parents=True)
    rows = [{"_id": i, "title": t, "text": x} for i, (t, x) in DOCS.items()]
    (dataset / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (dataset / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in QUERIES.items())
    )
    qrels = "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t1\n" for q, d in QRELS.items())
    (dataset / "qrels" / "test.tsv").write_text(qrels)
    return dataset


def test_a_second_run_reuses_the_index_and_a_chunking_change_rebuilds_it(tmp_path: Path) -> None:
    dataset = _dataset(tmp_path)

    def settings(**extra: object) -> Settings:
        return Settings(
            home=tmp_path / "home", embedding_provider="local", llm="extractive", retrieval="hybrid", **extra
        )

    first = run_beir(dataset, settings(chunk_size=200))
    assert first["index"].startswith("built") and first["outcomes"] == {"indexed": 4}
    assert first["modes"]["dense"]["Recall@10"] == 1.0
    # WHEN the same settings run again: nothing is ingested, the figures (BM25 too) are the same
    second = run_beir(dataset, settings(chunk_size=200), limit=2)
    assert second["index"].startswith("reused") and second["outcomes"] == {"skipped": 4}
    assert second["chunks_embedded"] == 0
    assert second["modes"] == first["modes"]
    # WHEN a setting that makes the points changes: the index is rebuilt, and the report says which
    third = run_beir(dataset, settings(chunk_size=128))
    assert third["index"] == "rebuilt (chunk_size 200 -> 128)", third["index"]
    assert third["outcomes"] == {"indexed": 4}
