"""Does retrieval find the right document when the answer's chunk does not name its subject?

Twelve quarterly reports written for this benchmark (four fictional companies, three quarters of
2024), alike in layout and wording as real filings are: each opens with a title that names the
company and the quarter, and the body says "the Company" and "the quarter", never the name or the
period. Five questions per report name both (60 questions). A question is answered when the right
report is among the top 5 chunks (the default ``top_k``).

Scored for each document context (what a chunk's embedded text carries: none, title, title+section,
title+section+page) under dense and hybrid retrieval, through the real pipeline (extraction of the
Markdown, chunking, the offline embedder, Qdrant Edge). Embeddings are cached on disk by text.

    .venv/bin/python bench/doc_context.py [--home DIR]
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import RESULTS, save, table

BUCKET = "ragstream-eval"
QUARTERS = [
    ("Q1 2024", "first quarter of 2024", "March 31, 2024"),
    ("Q2 2024", "second quarter of 2024", "June 30, 2024"),
    ("Q3 2024", "third quarter of 2024", "September 30, 2024"),
]

#: Per company: its name, what it does, its two segments, its risks, and per quarter the figures
#: (revenue $M, change %, gross margin %, share of the first segment %, cash $M, outlook low-high $M)
#: and one sentence of what happened.
COMPANIES: list[dict[str, Any]] = [
    {
        "name": "Harborlane Coffee",
        "business": "roasts coffee and runs cafés in coastal cities, and sells packaged coffee to grocers",
        "segments": ("Cafés", "Packaged coffee"),
        "risks": "green coffee prices, which rose sharply with poor harvests; the cost of dairy and "
        "labour in its cafés; and the concentration of its grocery sales on three retail chains",
        "quarters": [
            (412, 6, 38, 71, 188, (420, 435), "The Company opened eleven cafés and closed two."),
            (447, 9, 39, 73, 201, (455, 470), "A cold brew line launched in every café in May."),
            (461, 4, 37, 72, 176, (450, 465), "Hurricane closures cost about nine café days."),
        ],
    },
    {
        "name": "Veltrix Semiconductor",
        "business": "designs power-management chips for electric vehicles and industrial drives, made "
        "by contract foundries",
        "segments": ("Automotive", "Industrial"),
        "risks": "its reliance on two foundries in one region; export controls on advanced chips; and "
        "inventory corrections at automotive customers",
        "quarters": [
            (1280, -3, 52, 64, 2150, (1250, 1320), "Two automotive customers cut orders."),
            (1345, 5, 54, 66, 2240, (1380, 1440), "A 7-nanometre controller entered production."),
            (1412, 11, 55, 68, 2395, (1450, 1510), "The Company signed a second foundry agreement."),
        ],
    },
    {
        "name": "Northwind Freight",
        "business": "moves freight by truck and rail across North America and runs bonded warehouses",
        "segments": ("Trucking", "Warehousing"),
        "risks": "diesel prices; a shortage of licensed drivers; and a union contract for its "
        "warehouse staff that expires next year",
        "quarters": [
            (903, -2, 21, 58, 97, (910, 940), "Winter storms closed two rail corridors for a week."),
            (958, 1, 23, 57, 121, (960, 990), "Twelve new electric trucks joined the fleet."),
            (987, 3, 24, 55, 134, (1000, 1030), "A cold-storage warehouse opened in Memphis."),
        ],
    },
    {
        "name": "Quillstone Software",
        "business": "sells accounting and payroll software by subscription to small businesses",
        "segments": ("Subscriptions", "Professional services"),
        "risks": "churn among its smallest customers; a data breach at a payroll provider it competes "
        "with, which raised security expectations; and currency swings in Europe",
        "quarters": [
            (265, 18, 79, 88, 640, (272, 280), "The Company raised list prices by six percent."),
            (281, 17, 80, 89, 672, (290, 298), "A payroll module launched in Canada."),
            (296, 16, 81, 90, 705, (305, 312), "The Company acquired a tax filing start-up."),
        ],
    },
]


def report(company: dict[str, Any], q: int) -> str:
    """One quarterly report, in Markdown: only its title names the company and the quarter."""
    label, words, end = QUARTERS[q]
    revenue, change, margin, share, cash, (low, high), event = company["quarters"][q]
    first, second = company["segments"]
    trend = f"up {change}%" if change >= 0 else f"down {-change}%"
    return f"""# {company["name"]} Quarterly Report, {label} ({words.capitalize()})

## Overview

The Company {company["business"]}. {event} Management reviews the business as two segments,
{first} and {second}, and this report compares the quarter with the same quarter a year earlier
unless it says otherwise.

## Results of Operations

Net revenue for the quarter was ${revenue} million, {trend} from the same quarter a year earlier.
Gross margin was {margin}% of net revenue. Operating expenses grew more slowly than revenue, as
the Company held hiring flat outside its sales teams.

## Segment Information

{first} contributed {share}% of net revenue in the quarter and {second} the remaining
{100 - share}%. The margin of {first} was higher than that of {second}.

## Liquidity and Capital Resources

At the end of the quarter, on {end}, the Company held cash and cash equivalents of ${cash}
million and had no borrowings under its revolving credit facility. Cash from operations funded
capital expenditure and the quarterly dividend.

## Outlook

For the next quarter, management expects net revenue between ${low} million and ${high} million,
and a gross margin close to that of the quarter just ended.

## Risk Factors

The main risks to the Company's results are {company["risks"]}.
"""


def questions(company: dict[str, Any], q: int) -> list[str]:
    """Five questions about one report, each naming the company and the quarter."""
    label, words, _ = QUARTERS[q]
    name = company["name"]
    first = company["segments"][0]
    return [
        f"What was {name}'s net revenue in {label}?",
        f"How much cash did {name} hold at the end of the {words}?",
        f"What revenue does {name} expect for the quarter after {label}?",
        f"What share of {name}'s revenue came from {first} in the {words}?",
        f"What did {name} report as its main risks for {label}?",
    ]


def corpus() -> tuple[dict[str, bytes], list[tuple[str, str]]]:
    """The reports (under neutral file names) and the (question, right source) pairs."""
    documents: dict[str, bytes] = {}
    pairs: list[tuple[str, str]] = []
    n = 0
    for company in COMPANIES:
        for q in range(len(QUARTERS)):
            n += 1
            source = f"s3://{BUCKET}/filings/report-{n:02d}.md"
            documents[source] = report(company, q).encode()
            pairs += [(text, source) for text in questions(company, q)]
    return documents, pairs


def run(home: Path, context: str, retrieval: str, embedder: Any) -> dict[str, Any]:
    """Right report in the top 5 chunks, for one context and one retrieval."""
    from ragstream.blobs import MemoryBlobs
    from ragstream.config import get_settings
    from ragstream.evaluation import corpus_refs
    from ragstream.ingest import Pipeline
    from ragstream.query import Retriever

    documents, pairs = corpus()
    folder = home / f"{context or 'none'}-{retrieval}".replace(",", "+")
    shutil.rmtree(folder, ignore_errors=True)
    settings = get_settings(
        home=folder,
        index="edge",
        embed_context=context or "none",
        retrieval=retrieval,
        embedding_provider="local",
    )
    pipeline = Pipeline.from_settings(settings, store=MemoryBlobs(documents), embedder=embedder)
    outcomes = pipeline.run(corpus_refs(documents))
    assert all(o.status == "indexed" for o in outcomes), [o.reason for o in outcomes]
    retriever = Retriever(settings, embedder, pipeline.index)
    found = sum(source in {h.source for h in retriever.search(text, top_k=5)} for text, source in pairs)
    chunks = sum(o.chunks for o in outcomes)
    pipeline.index.close()
    return {
        "context": context or "none",
        "retrieval": retrieval,
        "chunks": chunks,
        "questions": len(pairs),
        "right report in top 5": round(found / len(pairs), 3),
    }


def main(argv: list[str] | None = None) -> int:
    from ragstream.embeddings import LocalEmbeddings
    from ragstream.evaluation import CachedEmbeddings

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", type=Path, default=RESULTS / "work" / "doc_context")
    args = parser.parse_args(argv)
    embedder = CachedEmbeddings(LocalEmbeddings(), args.home / "embeddings.sqlite", "local/all-MiniLM-L6-v2")
    rows = [
        run(args.home, context, retrieval, embedder)
        for context in ("none", "title", "title,section", "title,section,page")
        for retrieval in ("dense", "hybrid")
    ]
    print(table(rows, "document context: the right report among the top 5 chunks (60 questions, 12 reports)"))
    print(f"results: {save('doc_context', {'rows': rows})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
