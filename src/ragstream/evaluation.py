"""Retrieval quality on a BEIR-layout dataset, through the real ingest and search path."""

from __future__ import annotations

import csv
import json
import math
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .blobs import MemoryBlobs
from .errors import ConfigError
from .model import SourceRef

if TYPE_CHECKING:
    from .config import Settings

__all__ = ["corpus_refs", "dataset_settings", "load_corpus", "ndcg_at_k", "recall_at_k", "run_beir"]


def run_beir(
    dataset: Path,
    settings: Settings,
    *,
    split: str = "test",
    limit: int | None = None,
    on_progress: Callable[[Any], None] | None = None,
) -> dict[str, Any]:
    """Ingest ``corpus.jsonl`` into a collection of its own, run ``queries.jsonl``, score with qrels.

    Each corpus entry becomes one document (``beir://NAME/ID``, title and text) that goes through
    extraction, chunking, embedding and the index like any file; a query's ranking is its chunks'
    ranking with each document at its best chunk. A second run re-uses the index (nothing re-embedded).
    """
    from .ingest import Pipeline
    from .query import Retriever

    corpus_file, queries_file, qrels_file = (
        dataset / "corpus.jsonl",
        dataset / "queries.jsonl",
        dataset / "qrels" / f"{split}.tsv",
    )
    for f in (corpus_file, queries_file, qrels_file):
        if not f.is_file():
            raise ConfigError(
                f"{f} is missing: a BEIR dataset has corpus.jsonl, queries.jsonl and qrels/{split}.tsv"
            )
    name = dataset.resolve().name
    qrels = read_qrels(qrels_file)
    queries = {q["_id"]: q["text"] for q in _jsonl(queries_file) if q["_id"] in qrels}
    query_ids = list(queries)[:limit] if limit else list(queries)

    documents = load_corpus(dataset)
    eval_settings = dataset_settings(settings, name)
    pipeline = Pipeline.from_settings(eval_settings, store=MemoryBlobs(documents))
    started = time.perf_counter()
    outcomes = pipeline.run(corpus_refs(documents), on_outcome=on_progress)
    ingest_seconds = time.perf_counter() - started

    retriever = Retriever(eval_settings, pipeline.embedder, pipeline.index)
    started = time.perf_counter()
    ndcg10, r10, r100 = [], [], []
    for qid in query_ids:
        hits = retriever.search(queries[qid], top_k=300)
        ranking: list[str] = []
        for hit in hits:
            doc_id = hit.source.rsplit("/", 1)[-1]
            if doc_id not in ranking:
                ranking.append(doc_id)
        relevant = qrels[qid]
        ndcg10.append(ndcg_at_k(ranking, relevant, 10))
        r10.append(recall_at_k(ranking, relevant, 10))
        r100.append(recall_at_k(ranking, relevant, 100))
    search_seconds = time.perf_counter() - started
    pipeline.index.close()
    statuses: dict[str, int] = defaultdict(int)
    for o in outcomes:
        statuses[o.status] += 1
    n = max(len(query_ids), 1)
    return {
        "dataset": name,
        "split": split,
        "documents": len(documents),
        "outcomes": dict(statuses),
        "chunks_embedded": sum(o.embedded for o in outcomes),
        "queries": len(query_ids),
        "embedding": eval_settings.embedding_id,
        "nDCG@10": round(sum(ndcg10) / n, 4),
        "Recall@10": round(sum(r10) / n, 4),
        "Recall@100": round(sum(r100) / n, 4),
        "ingest_seconds": round(ingest_seconds, 1),
        "search_seconds": round(search_seconds, 1),
    }


def load_corpus(dataset: Path) -> dict[str, bytes]:
    """A BEIR corpus as documents: ``beir://NAME/ID`` -> title and text."""
    name = dataset.resolve().name
    documents: dict[str, bytes] = {}
    for doc in _jsonl(dataset / "corpus.jsonl"):
        text = "\n\n".join(part for part in (doc.get("title", ""), doc.get("text", "")) if part)
        documents[f"beir://{name}/{doc['_id']}"] = text.encode("utf-8")
    return documents


def corpus_refs(documents: dict[str, bytes]) -> list[SourceRef]:
    """The refs of a loaded corpus, as plain-text documents."""
    return [SourceRef(source=s, key=s.rsplit("/", 1)[-1] + ".txt") for s in documents]


def dataset_settings(settings: Settings, name: str) -> Settings:
    """A dataset gets a collection and a ledger of its own, under ``home/eval/NAME``."""
    return settings.model_copy(update={"home": settings.home / "eval" / name, "collection": f"eval-{name}"})


def ndcg_at_k(ranking: list[str], relevant: dict[str, int], k: int) -> float:
    """Normalised discounted cumulative gain at k, graded by the qrels' scores (as BEIR does)."""
    dcg = sum(relevant.get(doc, 0) / math.log2(i + 2) for i, doc in enumerate(ranking[:k]))
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum(rel / math.log2(i + 2) for i, rel in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at_k(ranking: list[str], relevant: dict[str, int], k: int) -> float:
    """Share of the relevant documents found in the first k."""
    wanted = {doc for doc, rel in relevant.items() if rel > 0}
    return len(wanted & set(ranking[:k])) / len(wanted) if wanted else 0.0


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """query id -> {document id: relevance}, from a BEIR qrels TSV with a header line."""
    qrels: dict[str, dict[str, int]] = defaultdict(dict)
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f, delimiter="\t")
        next(reader, None)
        for row in reader:
            if len(row) >= 3:
                qrels[row[0]][row[1]] = int(row[2])
    return dict(qrels)


def _jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
