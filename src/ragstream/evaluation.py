"""Retrieval quality on a BEIR-layout dataset, through the real ingest and search path.

Three rankings are scored side by side: ``dense`` (the embeddings alone), ``sparse`` (BM25 alone, over
the chunks' sparse vectors with the inverse document frequency Qdrant's ``Modifier.IDF`` uses) and
``hybrid`` (the store's fusion of both). Embeddings are cached on disk by (model, text), so runs that
change only the retrieval or the fusion re-embed nothing.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import shutil
import sqlite3
import threading
import time
from array import array
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .blobs import MemoryBlobs
from .errors import ConfigError
from .index import Hit, IndexWrapper, LexicalQuery, Point, SparseVector, VectorIndex
from .model import SourceRef

if TYPE_CHECKING:
    from .config import Settings
    from .embeddings import Embedder

__all__ = [
    "Bm25",
    "CachedEmbeddings",
    "RecordingIndex",
    "corpus_refs",
    "dataset_settings",
    "load_corpus",
    "ndcg_at_k",
    "recall_at_k",
    "run_beir",
]

#: The rankings an evaluation scores.
MODES = ("dense", "sparse", "hybrid")


def run_beir(
    dataset: Path,
    settings: Settings,
    *,
    split: str = "test",
    limit: int | None = None,
    on_progress: Callable[[Any], None] | None = None,
    on_total: Callable[[int], None] | None = None,
    embedder: Embedder | None = None,
) -> dict[str, Any]:
    """Ingest ``corpus.jsonl`` into a fresh collection of its own, run ``queries.jsonl``, score with
    qrels: dense, sparse and hybrid side by side (sparse and hybrid with ``retrieval=hybrid`` only).

    Each corpus entry becomes one document (``beir://NAME/ID``, title and text) that goes through
    extraction, chunking, embedding and the index like any file; a query's ranking is its chunks'
    ranking with each document at its best chunk. Embeddings are cached under ``home/eval`` (a second
    run re-embeds nothing). The dataset's index is kept between runs while the settings that make its
    points (``Settings.fingerprint_parts``) stay the same, so a run that changes only the queries or
    the query side ingests nothing; otherwise it is rebuilt, and the report's ``index`` says why.
    """
    from .index import open_index
    from .ingest import Pipeline

    queries_file, qrels_file = _dataset_files(dataset, split)
    name = dataset.resolve().name
    qrels = read_qrels(qrels_file)
    queries = {q["_id"]: q["text"] for q in _jsonl(queries_file) if q["_id"] in qrels}
    query_ids = list(queries)[:limit] if limit else list(queries)

    documents = load_corpus(dataset)
    eval_settings = dataset_settings(settings, name)
    index_state = _keep_or_rebuild(eval_settings)
    if embedder is None:
        from .embeddings import build_embeddings

        embedder = CachedEmbeddings(
            build_embeddings(settings), settings.home / "eval" / "embeddings.sqlite", settings.embedding_id
        )
    recorder = RecordingIndex(open_index(eval_settings), eval_settings.home / SPARSE_FILE)
    pipeline = Pipeline.from_settings(
        eval_settings, store=MemoryBlobs(documents), embedder=embedder, index=recorder
    )
    started = time.perf_counter()
    if on_total:
        on_total(len(documents))
    outcomes = pipeline.run(corpus_refs(documents), on_outcome=on_progress)
    ingest_seconds = time.perf_counter() - started
    recorder.save()
    (eval_settings.home / STATE_FILE).write_text(json.dumps(eval_settings.fingerprint_parts, sort_keys=True))

    started = time.perf_counter()
    by_mode = _scores(rankings(eval_settings, embedder, recorder), query_ids, queries, qrels)
    search_seconds = time.perf_counter() - started
    pipeline.index.close()
    statuses: dict[str, int] = defaultdict(int)
    for o in outcomes:
        statuses[o.status] += 1
    default = by_mode[eval_settings.retrieval]
    return {
        "dataset": name,
        "split": split,
        "documents": len(documents),
        "index": index_state,
        "outcomes": dict(statuses),
        "chunks_embedded": sum(o.embedded for o in outcomes),
        "queries": len(query_ids),
        "embedding": eval_settings.embedding_id,
        "retrieval": eval_settings.retrieval,
        "context": eval_settings.embed_context,
        "chunk_size": eval_settings.chunk_size,
        "chunk_overlap": eval_settings.chunk_overlap,
        "nDCG@10": default["nDCG@10"],
        "Recall@10": default["Recall@10"],
        "Recall@100": default["Recall@100"],
        "modes": by_mode,
        "ingest_seconds": round(ingest_seconds, 1),
        "search_seconds": round(search_seconds, 1),
    }


#: Beside a dataset's index: the settings it was built with, and the sparse vectors of its points.
STATE_FILE, SPARSE_FILE = "built-with.json", "sparse.json"


def _keep_or_rebuild(settings: Settings) -> str:
    """Keep the dataset's index when it was built with the same point-making settings, else delete
    it (a changed embedder may not even fit its collection); what was done, and why."""
    home = settings.home
    try:
        before = json.loads((home / STATE_FILE).read_text())
    except (OSError, ValueError):
        before = None
    now = json.loads(json.dumps(settings.fingerprint_parts))  # as the file holds it: lists, not tuples
    if before == now:  # kept; marked unfinished until this run has made it whole again
        (home / STATE_FILE).unlink()
        return "reused (built with the same settings)"
    shutil.rmtree(home, ignore_errors=True)
    if before is None:
        return "built (no earlier index of these settings)"
    changed = ", ".join(f"{k} {before.get(k)!r} -> {v!r}" for k, v in now.items() if before.get(k) != v)
    return f"rebuilt ({changed})"


def _dataset_files(dataset: Path, split: str) -> tuple[Path, Path]:
    """queries.jsonl and qrels/SPLIT.tsv of a BEIR dataset, once its three files are known to exist."""
    files = (dataset / "corpus.jsonl", dataset / "queries.jsonl", dataset / "qrels" / f"{split}.tsv")
    for f in files:
        if not f.is_file():
            raise ConfigError(
                f"{f} is missing: a BEIR dataset has corpus.jsonl, queries.jsonl and qrels/{split}.tsv"
            )
    return files[1], files[2]


def _scores(
    rankers: dict[str, Any], query_ids: list[str], queries: dict[str, str], qrels: dict[str, dict[str, int]]
) -> dict[str, dict[str, float]]:
    """Per retrieval mode, the mean nDCG@10, Recall@10 and Recall@100 over the queries."""
    scores: dict[str, dict[str, list[float]]] = {
        mode: {"nDCG@10": [], "Recall@10": [], "Recall@100": []} for mode in rankers
    }
    for qid in query_ids:
        for mode, rank in rankers.items():
            ranking = _documents(rank(queries[qid], 300))
            relevant = qrels[qid]
            scores[mode]["nDCG@10"].append(ndcg_at_k(ranking, relevant, 10))
            scores[mode]["Recall@10"].append(recall_at_k(ranking, relevant, 10))
            scores[mode]["Recall@100"].append(recall_at_k(ranking, relevant, 100))
    n = max(len(query_ids), 1)
    return {
        mode: {metric: round(sum(values) / n, 4) for metric, values in metrics.items()}
        for mode, metrics in scores.items()
    }


def rankings(
    settings: Settings, embedder: Embedder, index: RecordingIndex
) -> dict[str, Callable[[str, int], list[Hit]]]:
    """Per mode, a function of (query, k) to the k best chunks: dense always; sparse and hybrid when
    the chunks have sparse vectors (``retrieval=hybrid``)."""
    from .query import lexical_query

    def dense(query: str, k: int) -> list[Hit]:
        return index.search(embedder.embed_query(query), limit=k)

    out: dict[str, Callable[[str, int], list[Hit]]] = {"dense": dense}
    if not settings.hybrid:
        return out
    bm25 = Bm25(index.sparse)

    def sparse(query: str, k: int) -> list[Hit]:
        return bm25.search(lexical_query(query), k)

    def hybrid(query: str, k: int) -> list[Hit]:
        return index.search(embedder.embed_query(query), limit=k, lexical=lexical_query(query))

    out.update(sparse=sparse, hybrid=hybrid)
    return out


def _documents(hits: list[Hit]) -> list[str]:
    """The documents of ranked chunks, each at its best chunk."""
    ranking: list[str] = []
    for hit in hits:
        found = doc_id(hit.source)
        if found not in ranking:
            ranking.append(found)
    return ranking


class RecordingIndex(IndexWrapper):
    """A store as it is, that also keeps the sparse vector and source of every point written through
    it (for the BM25-alone ranking, which no store offers on its own)."""

    def __init__(self, inner: VectorIndex, saved: Path | None = None) -> None:
        self.inner = inner
        self.saved = saved
        self.sparse: dict[str, tuple[str, SparseVector]] = {}
        if saved is not None and saved.is_file():  # the points a kept index was built with
            for pid, (source, indices, values) in json.loads(saved.read_text()).items():
                self.sparse[pid] = (source, SparseVector(indices=indices, values=values))

    def save(self) -> None:
        """Keep the recorded sparse vectors beside the index, for the next run that reuses it."""
        if self.saved is not None:
            rows = {pid: [src, v.indices, v.values] for pid, (src, v) in self.sparse.items()}
            self.saved.write_text(json.dumps(rows))

    def _target(self) -> VectorIndex:
        return self.inner

    def upsert(self, points: Sequence[Point]) -> int:
        for p in points:
            if p.sparse is not None:
                self.sparse[p.id] = (str(p.metadata.get("source", "")), p.sparse)
        return self.inner.upsert(points)


class Bm25:
    """BM25 alone over recorded sparse vectors: the score Qdrant gives a sparse query with its IDF
    modifier, ``sum(idf(t) * w(t, chunk))`` over the query's terms, with
    ``idf(t) = ln((N - n(t) + 0.5) / (n(t) + 0.5) + 1)``."""

    def __init__(self, points: dict[str, tuple[str, SparseVector]]) -> None:
        self.postings: dict[int, list[tuple[str, float]]] = defaultdict(list)
        self.sources = {pid: source for pid, (source, _) in points.items()}
        for pid, (_, vector) in points.items():
            for term, weight in zip(vector.indices, vector.values, strict=True):
                self.postings[term].append((pid, weight))
        self.n = len(points)

    def search(self, query: LexicalQuery | None, k: int) -> list[Hit]:
        if query is None:
            return []
        scores: dict[str, float] = defaultdict(float)
        for term, q in zip(query.sparse.indices, query.sparse.values, strict=True):
            posting = self.postings.get(term, [])
            idf = math.log((self.n - len(posting) + 0.5) / (len(posting) + 0.5) + 1)
            for pid, weight in posting:
                scores[pid] += q * idf * weight
        best = sorted(scores.items(), key=lambda kv: -kv[1])[:k]
        return [
            Hit(id=pid, score=score, text="", metadata={"source": self.sources[pid]}) for pid, score in best
        ]


class CachedEmbeddings:
    """An embedder whose vectors are kept in a SQLite file by (embedding id, text): the same text is
    embedded once across evaluation runs."""

    def __init__(self, inner: Embedder, path: Path, model: str) -> None:
        self.inner = inner
        self.model = model
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False)
        self._db.execute("CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vector BLOB NOT NULL)")
        self._lock = threading.Lock()

    def _key(self, text: str) -> str:
        return hashlib.sha256(f"{self.model}\0{text}".encode()).hexdigest()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        keys = [self._key(t) for t in texts]
        found: dict[str, list[float]] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                part = keys[start : start + 500]
                rows = self._db.execute(
                    f"SELECT key, vector FROM vectors WHERE key IN ({','.join('?' * len(part))})", part
                )
                found.update((k, array("f", v).tolist()) for k, v in rows)
        missing = list({k: t for k, t in zip(keys, texts, strict=True) if k not in found}.items())
        if missing:
            vectors = self.inner.embed_documents([t for _, t in missing])
            new = {k: v for (k, _), v in zip(missing, vectors, strict=True)}
            with self._lock:
                self._db.executemany(
                    "INSERT OR REPLACE INTO vectors VALUES (?, ?)",
                    [(k, array("f", v).tobytes()) for k, v in new.items()],
                )
                self._db.commit()
            found.update(new)
        return [found[k] for k in keys]

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


#: The (never contacted) bucket whose objects an evaluation's documents pretend to be.
EVAL_BUCKET = "ragstream-eval"


def load_corpus(dataset: Path) -> dict[str, bytes]:
    """A BEIR corpus as documents: ``s3://ragstream-eval/NAME/ID.txt`` -> title and text (read from
    memory: nothing is fetched from S3)."""
    name = dataset.resolve().name
    documents: dict[str, bytes] = {}
    for doc in _jsonl(dataset / "corpus.jsonl"):
        text = "\n\n".join(part for part in (doc.get("title", ""), doc.get("text", "")) if part)
        documents[f"s3://{EVAL_BUCKET}/{name}/{doc['_id']}.txt"] = text.encode("utf-8")
    return documents


def corpus_refs(documents: dict[str, bytes]) -> list[SourceRef]:
    """The refs of a loaded corpus, as plain-text objects of :data:`EVAL_BUCKET`."""
    return [
        SourceRef(source=s, bucket=EVAL_BUCKET, key=s.removeprefix(f"s3://{EVAL_BUCKET}/")) for s in documents
    ]


def doc_id(source: str) -> str:
    """The corpus id of a document's source."""
    return source.rsplit("/", 1)[-1].removesuffix(".txt")


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
