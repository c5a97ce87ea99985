"""Ingest throughput over ../shared/corpus and the SciFact corpus: first run, then a re-run.

Documents, pages and chunks per second, and where the time goes (fetch, extract, chunk, embed, index,
commit: summed from the ledger's per-document timings). The re-run of unchanged files is expected to
extract and embed nothing.

    .venv/bin/python bench/ingest_throughput.py [--work DIR] [--scifact-limit N]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import RESULTS, SHARED, peak_rss_mb, save, table

STEPS = ("fetch", "extract", "chunk", "embed", "index")


def measure(pipeline: Any, run: Any) -> dict[str, Any]:
    """Run one ingest; figures from its outcomes and the ledger's timings."""
    started = time.perf_counter()
    outcomes = run()
    seconds = time.perf_counter() - started
    statuses = Counter(o.status for o in outcomes)
    indexed = [o for o in outcomes if o.status == "indexed"]
    steps = dict.fromkeys(STEPS, 0.0)
    for o in indexed:
        record = pipeline.ledger.get(o.source)
        for step in STEPS:
            steps[step] += record.timings.get(step, 0.0) if record else 0.0
    pages = sum(o.pages or 1 for o in indexed)
    chunks = sum(o.chunks for o in indexed)
    return {
        "seconds": round(seconds, 2),
        "documents": len(outcomes),
        "statuses": dict(statuses),
        "pages": pages,
        "chunks": chunks,
        "embedded": sum(o.embedded for o in outcomes),
        "tokens": sum(o.tokens for o in outcomes),
        "ocr_pages": sum(o.ocr_pages for o in indexed),
        "docs_per_s": round(len(outcomes) / seconds, 2),
        "pages_per_s": round(pages / seconds, 2),
        "chunks_per_s": round(chunks / seconds, 2),
        "step_seconds": {k: round(v, 2) for k, v in steps.items()},
        "embed_share": round(steps["embed"] / seconds, 3) if seconds else 0.0,
    }


def corpus(work: Path) -> dict[str, Any]:
    from ragstream.config import get_settings
    from ragstream.ingest import Pipeline

    home = work / "corpus"
    shutil.rmtree(home, ignore_errors=True)
    pipeline = Pipeline.from_settings(get_settings(home=home))
    root = str(SHARED / "corpus")
    first = measure(pipeline, lambda: pipeline.sync(root))
    again = measure(pipeline, lambda: pipeline.sync(root))
    pipeline.index.close()
    return {"first": first, "rerun": again, "embedding_tokens": first["tokens"]}


def scifact(work: Path, limit: int | None) -> dict[str, Any]:
    from ragstream.blobs import MemoryBlobs
    from ragstream.config import get_settings
    from ragstream.evaluation import corpus_refs, dataset_settings, load_corpus
    from ragstream.ingest import Pipeline

    dataset = SHARED / "qa" / "scifact"
    home = work / "scifact"
    shutil.rmtree(home, ignore_errors=True)
    documents = load_corpus(dataset)
    if limit:
        documents = dict(list(documents.items())[:limit])
    settings = dataset_settings(get_settings(home=home), dataset.name)
    pipeline = Pipeline.from_settings(settings, store=MemoryBlobs(documents))
    refs = corpus_refs(documents)
    first = measure(pipeline, lambda: pipeline.run(refs))
    again = measure(pipeline, lambda: pipeline.run(refs))
    pipeline.index.close()
    return {"first": first, "rerun": again, "embedding_tokens": first["tokens"], "home": str(home)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", type=Path, default=RESULTS / "work")
    parser.add_argument("--scifact-limit", type=int, default=None, help="only the first N SciFact documents")
    parser.add_argument("--skip-scifact", action="store_true")
    args = parser.parse_args(argv)
    result: dict[str, Any] = {"corpus": corpus(args.work)}
    if not args.skip_scifact:
        result["scifact"] = scifact(args.work, args.scifact_limit)
    result["peak_rss_mb"] = peak_rss_mb()
    rows = []
    for name, runs in result.items():
        if not isinstance(runs, dict) or "first" not in runs:
            continue
        for label in ("first", "rerun"):
            r = runs[label]
            rows.append(
                {
                    "set": name,
                    "run": label,
                    "docs": r["documents"],
                    "seconds": r["seconds"],
                    "docs/s": r["docs_per_s"],
                    "pages/s": r["pages_per_s"],
                    "chunks/s": r["chunks_per_s"],
                    "embedded": r["embedded"],
                    "embed share": r["embed_share"],
                    **{k: v for k, v in r["step_seconds"].items()},
                }
            )
    print(table(rows, "ingest throughput (step columns: seconds summed over documents)"))
    print(f"peak RSS {result['peak_rss_mb']} MB; results: {save('ingest_throughput', result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
