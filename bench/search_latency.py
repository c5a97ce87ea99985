"""Warm latency of search: through the local HTTP server (``POST /search``) and of the core call
(``Retriever.search``), p50/p95 over a collection under ``--home``.

If ``--home`` holds no collection yet, it is built by ingesting ../shared/corpus when present, else the
examples/ folder. Prints a table and writes JSON to bench/results/.

    .venv/bin/python bench/search_latency.py --home DIR [--n 200] [--top-k 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
CORPORA = [ROOT.parent / "shared" / "corpus", ROOT / "examples"]
QUERIES = [
    "How many days of annual leave do employees get?",
    "What was the revenue in the third quarter?",
    "Why did we choose this vector database?",
    "What caused the ledger outage?",
    "Which expenses are reimbursed for travel?",
    "Where are the offices located?",
    "gross margin",
    "table of results",
    "siege of Vicksburg",
    "maintenance handbook inspection",
]
KEY = "bench-api-key"  # a local placeholder; the server binds 127.0.0.1 only


def percentiles(samples: list[float]) -> dict[str, float]:
    """p50/p95/mean/min/max in milliseconds."""
    ms = sorted(s * 1000 for s in samples)
    q = statistics.quantiles(ms, n=100, method="inclusive")
    return {
        "p50_ms": round(q[49], 2),
        "p95_ms": round(q[94], 2),
        "mean_ms": round(statistics.fmean(ms), 2),
        "min_ms": round(ms[0], 2),
        "max_ms": round(ms[-1], 2),
        "n": len(ms),
    }


def ensure_collection(home: Path) -> str:
    """Ingest a corpus into ``home`` unless it already holds points; returns what was used."""
    from ragstream.config import get_settings
    from ragstream.ingest import Pipeline

    settings = get_settings(home=home, api_key=KEY)
    pipeline = Pipeline.from_settings(settings)
    try:
        if pipeline.index.count() > 0:
            return f"existing collection under {home}"
        for corpus in CORPORA:
            if corpus.is_dir():
                sync = getattr(pipeline, "sync_folder", None) or pipeline.sync
                outcomes = sync(str(corpus))
                failed = [o for o in outcomes if getattr(o, "status", "") == "failed"]
                print(f"ingested {corpus}: {len(outcomes)} documents, {len(failed)} failed")
                if pipeline.index.count() > 0:
                    return str(corpus)
        raise SystemExit("no corpus could be ingested (../shared/corpus, examples/)")
    finally:
        pipeline.index.close()
        pipeline.ledger.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--home", type=Path, required=True, help="RAGSTREAM_HOME holding (or to hold) the index"
    )
    parser.add_argument("--n", type=int, default=200, help="timed requests per path")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--top-k", type=int, default=5)
    args = parser.parse_args(argv)
    os.environ.setdefault("RAGSTREAM_LLM", "extractive")

    from ragstream.api import build_app
    from ragstream.config import get_settings
    from ragstream.ledger import open_ledger
    from ragstream.query import Retriever
    from ragstream.server import make_server

    corpus = ensure_collection(args.home)
    settings = get_settings(home=args.home, api_key=KEY)
    retriever = Retriever.from_settings(settings)
    points = retriever.index.count()
    app = build_app(retriever, open_ledger(settings), settings)
    server = make_server(app, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def core(i: int) -> None:
        retriever.search(QUERIES[i % len(QUERIES)], top_k=args.top_k)

    with httpx.Client(base_url=server.url, headers={"x-api-key": KEY}, timeout=60) as client:

        def http(i: int) -> None:
            r = client.post("/search", json={"query": QUERIES[i % len(QUERIES)], "top_k": args.top_k})
            r.raise_for_status()

        results = {}
        for name, fn in (("core Retriever.search", core), ("HTTP POST /search", http)):
            for i in range(args.warmup):
                fn(i)
            samples = []
            for i in range(args.n):
                start = time.perf_counter()
                fn(i)
                samples.append(time.perf_counter() - start)
            results[name] = percentiles(samples)
    server.shutdown()
    server.server_close()

    print(
        f"\nsearch latency, warm: {points} points ({corpus}), "
        f"embedder {settings.embedding_id}, top_k {args.top_k}"
    )
    print(f"{'path':<24}{'n':>6}{'p50 ms':>10}{'p95 ms':>10}{'mean ms':>10}{'max ms':>10}")
    for name, r in results.items():
        print(
            f"{name:<24}{r['n']:>6}{r['p50_ms']:>10.2f}{r['p95_ms']:>10.2f}{r['mean_ms']:>10.2f}{r['max_ms']:>10.2f}"
        )
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = out_dir / f"search_latency-{stamp}.json"
    out.write_text(
        json.dumps(
            {
                "benchmark": "search_latency",
                "when": stamp,
                "home": str(args.home),
                "corpus": corpus,
                "points": points,
                "embedding": settings.embedding_id,
                "top_k": args.top_k,
                "warmup": args.warmup,
                "machine": {
                    "python": platform.python_version(),
                    "cpu_count": os.cpu_count(),
                    "platform": platform.platform(),
                },
                "results": results,
            },
            indent=2,
        )
    )
    print(f"\nwrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
