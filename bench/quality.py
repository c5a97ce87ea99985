"""Retrieval quality: ``ragstream eval`` over ../shared/qa/scifact (train split), next to published
reference figures.

The references are for SciFact's *test* split (300 queries) as published; the train split (809
queries) is what ../shared/qa holds, so the comparison is indicative, not exact.

    .venv/bin/python bench/quality.py [--home DIR] [--limit N]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import RESULTS, SHARED, save, table

#: Published nDCG@10 on SciFact (test split): BEIR paper (Thakur et al., 2021, Table 2) for BM25;
#: the MTEB leaderboard (retrieval, SciFact) for all-MiniLM-L6-v2.
REFERENCES = [
    {"system": "BM25 (BEIR paper, test split)", "nDCG@10": 0.665, "Recall@100": 0.908},
    {"system": "all-MiniLM-L6-v2 (MTEB, test split)", "nDCG@10": 0.645, "Recall@100": None},
]


def main(argv: list[str] | None = None) -> int:
    from ragstream.config import get_settings
    from ragstream.evaluation import run_beir

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--home",
        type=Path,
        default=RESULTS / "work" / "scifact",
        help="embeddings are cached under HOME/eval: a second run re-embeds nothing",
    )
    parser.add_argument("--limit", type=int, default=None, help="only the first N queries")
    args = parser.parse_args(argv)
    report = run_beir(
        SHARED / "qa" / "scifact", get_settings(home=args.home), split="train", limit=args.limit
    )
    ours: list[dict[str, Any]] = [
        {
            "system": f"ragstream {mode} ({report['embedding']}, train split)",
            "nDCG@10": figures["nDCG@10"],
            "Recall@100": figures["Recall@100"],
            "Recall@10": figures["Recall@10"],
        }
        for mode, figures in report["modes"].items()
    ]
    rows = [*ours, *({**r, "Recall@10": ""} for r in REFERENCES)]
    print(
        table(
            rows,
            f"retrieval quality on SciFact ({report['queries']} queries, {report['documents']} documents)",
        )
    )
    print(f"results: {save('quality', {'report': report, 'references': REFERENCES})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
