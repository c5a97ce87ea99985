"""Retrieval settings swept on SciFact (train split): document context, chunk size and overlap, each
scored dense / sparse / hybrid side by side (``ragstream.evaluation.run_beir``).

Runs one configuration after another in this process; embeddings are cached on disk by text under
``--home``, so a configuration whose chunks were embedded before costs no embedding.

    .venv/bin/python bench/retrieval_sweep.py [--home DIR] [--configs 200/30/title,section ...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import RESULTS, SHARED, save, table

#: chunk_size/chunk_overlap/embed_context; the first is the default.
CONFIGS = [
    "200/30/title,section",
    "200/30/none",
    "128/20/title,section",
    "200/0/title,section",
    "240/40/title,section",
]


def main(argv: list[str] | None = None) -> int:
    from ragstream.config import get_settings
    from ragstream.evaluation import run_beir

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", type=Path, default=RESULTS / "work" / "sweep")
    parser.add_argument("--configs", nargs="+", default=CONFIGS, help="size/overlap/context")
    parser.add_argument("--limit", type=int, default=None, help="only the first N queries")
    args = parser.parse_args(argv)
    rows: list[dict[str, Any]] = []
    reports = []
    for config in args.configs:
        size, overlap, context = config.split("/")
        settings = get_settings(
            home=args.home,
            chunk_size=int(size),
            chunk_overlap=int(overlap),
            embed_context=context,
            retrieval="hybrid",
            embedding_provider="local",
        )
        report = run_beir(SHARED / "qa" / "scifact", settings, split="train", limit=args.limit)
        reports.append(report)
        row: dict[str, Any] = {"chunk size": size, "overlap": overlap, "context": context}
        row["chunks"] = report["chunks_embedded"]
        for mode, figures in report["modes"].items():
            row[f"{mode} nDCG@10"] = figures["nDCG@10"]
        row["hybrid R@100"] = report["modes"]["hybrid"]["Recall@100"]
        rows.append(row)
        print(row, flush=True)
    print(table(rows, f"SciFact train ({reports[0]['queries']} queries): dense / sparse / hybrid"))
    print(f"results: {save('retrieval_sweep', {'rows': rows, 'reports': reports})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
