"""How ingest (upsert) and search cost grow with the collection: 1k, 10k, 100k chunks.

Random unit vectors (384-d, like the local model's; random, so an ANN index sees no clusters) with
realistic metadata (``chunk_metadata``) go through ragstream's index contract into one embedded store,
so the embedder does not dominate. Each size runs in a fresh process, so its memory peak is its own.
Writes a PNG plot next to the JSON. ``bench/backends.py`` runs this for every embedded store.

    .venv/bin/python bench/scaling.py [--sizes 1000 10000 100000] [--backend edge|qdrant|faiss|chroma|milvus]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import RESULTS, peak_rss_mb, percentiles, save, table

DIM = 384
#: --backend names: RAGSTREAM_INDEX values ("local", the former name of qdrant-client's local mode, too).
BACKENDS = {"local": "qdrant"}


def one_size(n: int, queries: int = 50, backend: str = "local") -> dict[str, Any]:
    """Build a collection of ``n`` points, then time searches, filtered searches and a source delete."""
    import numpy as np

    from ragstream.config import Settings
    from ragstream.index import Point, SearchFilter, SparseVector, chunk_metadata, open_index, point_id
    from ragstream.lexical import encode_document
    from ragstream.query import lexical_query

    rng = np.random.default_rng(42)
    folder = Path(tempfile.mkdtemp(prefix="ragstream-scaling-"))
    index = open_index(Settings(home=folder, index=BACKENDS.get(backend, backend), collection="scaling"))
    index.ensure_collection(DIM)
    text = "The committee reviewed the figures of the quarter and agreed on the next steps. " * 10
    # the sparse side (hybrid stores): 90 words per chunk drawn Zipf-like from 20,000 made-up words
    vocabulary = [f"w{i}x{(i * 7919) % 1000}" for i in range(20_000)]
    zipf = 1.0 / np.arange(1, len(vocabulary) + 1)
    zipf /= zipf.sum()
    hybrid = index.capabilities.hybrid
    per_doc = 20
    started = time.perf_counter()
    for start in range(0, n, 2048):
        count = min(2048, n - start)
        vectors = rng.standard_normal((count, DIM)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        points = []
        for i, vector in enumerate(vectors, start=start):
            source = f"s3://bench/folder-{i // 5000}/doc-{i // per_doc}.pdf"
            points.append(
                Point(
                    id=point_id(source, "v1", i % per_doc),
                    vector=vector.tolist(),
                    text=text,
                    metadata=chunk_metadata(
                        source=source,
                        version="v1",
                        page=1 + i % per_doc // 4,
                        chunk_index=i % per_doc,
                        content_type="application/pdf",
                        bucket="bench",
                        key=source.removeprefix("s3://bench/"),
                    ),
                )
            )
        if hybrid:
            for point in points:
                words = " ".join(vocabulary[w] for w in rng.choice(len(vocabulary), size=90, p=zipf))
                point.text = words  # Milvus runs its own BM25 over the text; the others read sparse
                indices, values = encode_document(words)
                point.sparse = SparseVector(indices=indices, values=values)
        index.upsert(points)
    upsert_seconds = time.perf_counter() - started
    qs = rng.standard_normal((queries, DIM)).astype(np.float32)
    qs /= np.linalg.norm(qs, axis=1, keepdims=True)
    index.search(qs[0].tolist(), limit=5)  # warm
    plain, filtered = [], []
    flt = SearchFilter(source_prefix="s3://bench/folder-0/")
    for q in qs:
        t = time.perf_counter()
        index.search(q.tolist(), limit=5)
        plain.append(time.perf_counter() - t)
        t = time.perf_counter()
        index.search(q.tolist(), limit=5, flt=flt)
        filtered.append(time.perf_counter() - t)
    lexical = [
        lexical_query(" ".join(vocabulary[w] for w in rng.choice(len(vocabulary), size=5, p=zipf)))
        for _ in range(queries)
    ]
    hybrid_plain, hybrid_filtered = [], []
    if hybrid:
        index.search(qs[0].tolist(), limit=5, lexical=lexical[0])  # warm
        for q, lex in zip(qs, lexical, strict=True):
            t = time.perf_counter()
            index.search(q.tolist(), limit=5, lexical=lex)
            hybrid_plain.append(time.perf_counter() - t)
            t = time.perf_counter()
            index.search(q.tolist(), limit=5, flt=flt, lexical=lex)
            hybrid_filtered.append(time.perf_counter() - t)
    t = time.perf_counter()
    index.delete_source("s3://bench/folder-0/doc-3.pdf")
    delete_seconds = time.perf_counter() - t
    child_peak_mb = children_peak_rss_mb()
    index.close()
    disk_mb = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20
    shutil.rmtree(folder, ignore_errors=True)
    return {
        "chunks": n,
        "upsert_seconds": round(upsert_seconds, 2),
        "upsert_points_per_s": round(n / upsert_seconds),
        "search": percentiles(plain),
        "filtered_search": percentiles(filtered),
        "hybrid_search": percentiles(hybrid_plain) if hybrid else None,
        "hybrid_filtered_search": percentiles(hybrid_filtered) if hybrid else None,
        "delete_source_ms": round(delete_seconds * 1000, 1),
        "disk_mb": round(disk_mb, 1),
        "peak_rss_mb": peak_rss_mb(),
        # an engine in a child process (Milvus Lite runs the milvus binary)
        "child_peak_rss_mb": child_peak_mb,
    }


def children_peak_rss_mb() -> float:
    """Peak resident memory (VmHWM) of this process's live children, summed, in MB (Linux)."""
    total = 0
    for children in Path("/proc/self/task").glob("*/children"):
        for pid in children.read_text().split():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            hwm = [line for line in status.splitlines() if line.startswith("VmHWM")]
            total += int(hwm[0].split()[1]) if hwm else 0
    return round(total / 1024, 1)


def plot(rows: list[dict[str, Any]], path: Path, backend: str) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    sizes = [r["chunks"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    axes[0].plot(sizes, [r["upsert_seconds"] for r in rows], "o-")
    axes[0].set(title="upsert time (s)", xlabel="chunks in collection", xscale="log", yscale="log")
    axes[1].plot(sizes, [r["search"]["p50_ms"] for r in rows], "o-", label="p50")
    axes[1].plot(sizes, [r["search"]["p95_ms"] for r in rows], "o--", label="p95")
    axes[1].plot(sizes, [r["filtered_search"]["p50_ms"] for r in rows], "s-", label="filtered p50")
    axes[1].set(title="search latency (ms)", xlabel="chunks in collection", xscale="log", yscale="log")
    axes[1].legend()
    axes[2].plot(sizes, [r["peak_rss_mb"] for r in rows], "o-")
    axes[2].set(title="peak memory (MB)", xlabel="chunks in collection", xscale="log")
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle(f"ragstream embedded index ({backend}): cost vs collection size")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument(
        "--backend",
        choices=["edge", "qdrant", "local", "faiss", "chroma", "milvus"],
        default="local",
        help="the embedded store (RAGSTREAM_INDEX); local = qdrant: qdrant-client's local mode",
    )
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: run one size, print JSON
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(one_size(args.one, backend=args.backend)))
        return 0
    rows = []
    for n in args.sizes:
        out = subprocess.run(
            [sys.executable, __file__, "--one", str(n), "--backend", args.backend],
            capture_output=True,
            text=True,
            check=True,
        )
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    flat = [
        {
            "chunks": r["chunks"],
            "upsert s": r["upsert_seconds"],
            "points/s": r["upsert_points_per_s"],
            "search p50 ms": r["search"]["p50_ms"],
            "search p95 ms": r["search"]["p95_ms"],
            "filtered p50 ms": r["filtered_search"]["p50_ms"],
            "delete source ms": r["delete_source_ms"],
            "disk MB": r["disk_mb"],
            "peak RSS MB": r["peak_rss_mb"],
        }
        for r in rows
    ]
    print(table(flat, f"scaling of the embedded index ({args.backend})"))
    name = "scaling" if args.backend == "local" else f"scaling-{args.backend}"
    RESULTS.mkdir(parents=True, exist_ok=True)
    png = plot(rows, RESULTS / f"{name}.png", args.backend)
    print(
        f"results: {save(name, {'sizes': rows, 'backend': args.backend, 'plot': str(png) if png else None})}"
        + (f"; plot: {png}" if png else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
