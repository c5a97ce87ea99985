"""Does retrieval find the right document when the answer's chunk does not name its subject?

Twelve quarterly reports written for this benchmark (four fictional companies, three quarters of
2024), alike in layout and wording as real filings are: each opens with a title that names the
company and the quarter, then nine sections (overview, results, segments, liquidity, outlook, risks,
and the boilerplate every filing has) that say "the Company" and "the quarter", never the name or
the period. Five questions per report name both (60 questions). Scored: the right report among the
top 5 chunks (the default ``top_k``), and, stricter, the chunk of the right report that holds the
answer (its figure or phrase) among them.

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
unless it says otherwise. The figures are unaudited and prepared on the same basis as the annual
financial statements; some amounts may not add up because of rounding.

## Forward-Looking Statements

This report contains statements about future events and expectations, which are forward-looking
statements. Words such as expects, anticipates, intends, plans, believes and estimates identify
them. They involve risks and uncertainties, and actual results may differ materially. The Company
undertakes no obligation to update any forward-looking statement after the date of this report.

## Results of Operations

Net revenue for the quarter was ${revenue} million, {trend} from the same quarter a year earlier.
Gross margin was {margin}% of net revenue. Operating expenses grew more slowly than revenue, as
the Company held hiring flat outside its sales teams. Research and development spending stayed
close to the level of the prior quarter, and marketing spending followed the seasonal pattern.

## Segment Information

{first} contributed {share}% of net revenue in the quarter and {second} the remaining
{100 - share}%. The margin of {first} was higher than that of {second}. Segment results exclude
corporate costs, which are reported separately and are not allocated to the segments.

## Liquidity and Capital Resources

At the end of the quarter, on {end}, the Company held cash and cash equivalents of ${cash}
million and had no borrowings under its revolving credit facility. Cash from operations funded
capital expenditure and the quarterly dividend. The Board approved the dividend at the same rate
per share as in the prior quarter.

## Critical Accounting Estimates

Preparing the financial statements requires estimates and judgements that affect the reported
amounts of assets, liabilities, revenue and expenses. The most significant concern revenue
recognition, the valuation of inventories, the useful lives of long-lived assets and income
taxes. No change to these estimates had a material effect on the results of the quarter.

## Outlook

For the next quarter, management expects net revenue between ${low} million and ${high} million,
and a gross margin close to that of the quarter just ended.

## Legal Proceedings

The Company is party to claims and lawsuits that arise in the ordinary course of business. In the
opinion of management, their outcome is not expected to have a material adverse effect on the
financial position, results of operations or cash flows of the Company.

## Risk Factors

The main risks to the Company's results are {company["risks"]}.
"""


def questions(company: dict[str, Any], q: int) -> list[tuple[str, str]]:
    """Five questions about one report, each naming the company and the quarter, with a phrase of
    the chunk that answers it."""
    label, words, _ = QUARTERS[q]
    name = company["name"]
    revenue, _, _, share, cash, (low, _), _ = company["quarters"][q]
    first = company["segments"][0]
    return [
        (f"What was {name}'s net revenue in {label}?", f"${revenue} million"),
        (f"How much cash did {name} hold at the end of the {words}?", f"${cash}"),
        (f"What revenue does {name} expect for the quarter after {label}?", f"between ${low} million"),
        (f"What share of {name}'s revenue came from {first} in the {words}?", f"contributed {share}%"),
        (f"What did {name} report as its main risks for {label}?", company["risks"][:40]),
    ]


def corpus() -> tuple[dict[str, bytes], list[tuple[str, str, str]]]:
    """The reports (under neutral file names) and the (question, right source, answer phrase)."""
    documents: dict[str, bytes] = {}
    pairs: list[tuple[str, str, str]] = []
    n = 0
    for company in COMPANIES:
        for q in range(len(QUARTERS)):
            n += 1
            source = f"s3://{BUCKET}/filings/report-{n:02d}.md"
            documents[source] = report(company, q).encode()
            pairs += [(text, source, answer) for text, answer in questions(company, q)]
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
    found = answered = 0
    for text, source, answer in pairs:
        hits = retriever.search(text, top_k=5)
        found += any(h.source == source for h in hits)
        answered += any(h.source == source and answer in " ".join(h.text.split()) for h in hits)
    chunks = sum(o.chunks for o in outcomes)
    pipeline.index.close()
    return {
        "context": context or "none",
        "retrieval": retrieval,
        "chunks": chunks,
        "questions": len(pairs),
        "right report in top 5": round(found / len(pairs), 3),
        "its answer chunk in top 5": round(answered / len(pairs), 3),
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
