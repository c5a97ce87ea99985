"""Every embedded vector store side by side: scaling (1k / 10k / 100k chunks) and a real ingest.

Scaling: ``bench/scaling.py --one N --backend B`` in a fresh process per store and size (so each
peak RSS is its own; Milvus Lite's engine runs in a child process, whose peak is added): upsert
throughput, search and filtered search p50/p95 (50 queries, top 5; the filter is one folder of 5,000
chunks), hybrid search (dense + BM25 fused by the engine) next to them on the stores that declare it,
delete of one source, disk and peak RSS. The vectors are random unit vectors (384-d): fine
for cost, meaningless for recall.

Corpus (``--corpus DIR``): ``ragstream ingest DIR`` per store with a fresh RAGSTREAM_HOME, reporting
the wall time and the indexed / failed counts (which must be the same on every store).

    .venv/bin/python bench/backends.py [--sizes 1000 10000 100000] [--stores edge faiss ...] \
        [--corpus ../shared/corpus]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from report import save, table  # noqa: E402

STORES = ["edge", "qdrant", "faiss", "chroma", "milvus"]


def scaling(store: str, n: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, str(HERE / "scaling.py"), "--one", str(n), "--backend", store],
        capture_output=True,
        text=True,
        check=True,
        timeout=3600,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def corpus(store: str, folder: Path) -> dict[str, Any]:
    """``ragstream ingest`` of the folder into a fresh home with this store."""
    home = Path(tempfile.mkdtemp(prefix=f"ragstream-corpus-{store}-"))
    env = {**os.environ, "RAGSTREAM_HOME": str(home), "RAGSTREAM_INDEX": store}
    ragstream = Path(sys.executable).parent / "ragstream"
    started = time.perf_counter()
    out = subprocess.run(
        [str(ragstream), "ingest", str(folder), "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=3600,
        check=False,
    )
    seconds = time.perf_counter() - started
    outcomes = json.loads(out.stdout) if out.stdout.strip().startswith("[") else []
    statuses: dict[str, int] = {}
    for o in outcomes:
        statuses[o["status"]] = statuses.get(o["status"], 0) + 1
    disk = sum(f.stat().st_size for f in home.rglob("*") if f.is_file() and "ledger" not in f.name)
    return {
        "store": store,
        "seconds": round(seconds, 1),
        "indexed": statuses.get("indexed", 0),
        "failed": statuses.get("failed", 0),
        "chunks": sum(o["chunks"] for o in outcomes if o["status"] == "indexed"),
        "index_disk_mb": round(disk / 2**20, 1),
        "returncode": out.returncode,
        "stderr_tail": re.sub(r"\s+", " ", out.stderr[-300:]) if out.returncode not in (0, 1) else "",
    }


def _pair(figures: dict[str, float] | None) -> str:
    """p50 / p95 of a timing, or "dense only" for a store without hybrid search."""
    return f"{figures['p50_ms']} / {figures['p95_ms']}" if figures else "dense only"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="*", default=[1000, 10000, 100000])
    parser.add_argument("--stores", nargs="+", default=STORES, choices=STORES)
    parser.add_argument("--corpus", type=Path, help="also ingest this folder with every store")
    args = parser.parse_args(argv)
    rows: list[dict[str, Any]] = []
    for n in args.sizes:
        for store in args.stores:
            r = scaling(store, n)
            search, filtered = r["search"], r["filtered_search"]
            rows.append(
                {
                    "store": store,
                    "chunks": n,
                    "upsert points/s": r["upsert_points_per_s"],
                    "search p50/p95 ms": f"{search['p50_ms']} / {search['p95_ms']}",
                    "filtered p50/p95 ms": f"{filtered['p50_ms']} / {filtered['p95_ms']}",
                    "hybrid p50/p95 ms": _pair(r.get("hybrid_search")),
                    "hybrid filtered p50/p95 ms": _pair(r.get("hybrid_filtered_search")),
                    "delete source ms": r["delete_source_ms"],
                    "disk MB": r["disk_mb"],
                    # the Python process, plus an engine's own process (Milvus Lite): an upper bound
                    "peak RSS MB": round(r["peak_rss_mb"] + r.get("child_peak_rss_mb", 0.0), 1),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    if rows:
        print(table(rows, "embedded stores: random unit vectors, 384-d"))
    ingests = [corpus(store, args.corpus) for store in args.stores] if args.corpus else []
    if ingests:
        shown = [{k: v for k, v in r.items() if k != "stderr_tail"} for r in ingests]
        print(table(shown, f"ingest {args.corpus}"))
        for r in ingests:
            if r["stderr_tail"]:
                print(f"{r['store']}: {r['stderr_tail']}")
    print(f"results: {save('backends', {'scaling': rows, 'corpus': ingests})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
