"""Cost model: what ragstream spends for N documents, from measured counts and public list prices.

Counts per document come from bench/results/ingest_throughput.json (run that first): pages, pages
that needed OCR (Textract in the cloud), chunks and embedding tokens, and the seconds spent outside
embedding (the Lambda's own work). Prices are in PRICES below, with the date they were taken.

    .venv/bin/python bench/cost.py [--memory-mb 2048]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import RESULTS, save, table

#: Public list prices (USD), us-east-1 / OpenAI API, as published on their pricing pages; taken 2025-06.
PRICES = {
    "taken": "2025-06",
    "textract_detect_text_per_page": 1.50
    / 1000,  # DetectDocumentText and async text detection, first 1M pages
    "openai_text_embedding_3_small_per_token": 0.02 / 1_000_000,
    "lambda_per_gb_second_x86": 0.0000166667,
    "lambda_per_request": 0.20 / 1_000_000,
    "sqs_per_request": 0.40 / 1_000_000,
    "dynamodb_on_demand_per_write": 1.25 / 1_000_000,  # per write request unit
    "s3_get_per_request": 0.0004 / 1000,
}
#: Assumed wall time of one OpenAI embedding request (the Lambda waits for it): not measured here.
EMBED_REQUEST_SECONDS = 0.4
EMBED_BATCH = 128


def per_document(measured: dict[str, Any], memory_mb: int) -> dict[str, float]:
    """Average counts of one document of the measured set, and the resulting cost."""
    first = measured["first"]
    docs = max(first["documents"], 1)
    steps = first["step_seconds"]
    own_seconds = sum(v for k, v in steps.items() if k != "embed") / docs
    chunks = first["chunks"] / docs
    tokens = measured.get("embedding_tokens", first["chunks"] * 180) / docs
    requests = max(1.0, chunks / EMBED_BATCH)
    lambda_seconds = own_seconds + requests * EMBED_REQUEST_SECONDS
    gb_s = lambda_seconds * memory_mb / 1024
    cost = {
        "textract": first["ocr_pages"] / docs * PRICES["textract_detect_text_per_page"],
        "embeddings": tokens * PRICES["openai_text_embedding_3_small_per_token"],
        "lambda": gb_s * PRICES["lambda_per_gb_second_x86"] + PRICES["lambda_per_request"],
        "queue+ledger+s3": 3 * PRICES["sqs_per_request"]
        + 2 * PRICES["dynamodb_on_demand_per_write"]
        + PRICES["s3_get_per_request"],
    }
    return {
        "pages": first["pages"] / docs,
        "ocr_pages": first["ocr_pages"] / docs,
        "chunks": chunks,
        "tokens": tokens,
        "lambda_gb_s": gb_s,
        **{f"usd_{k}": v for k, v in cost.items()},
        "usd_total": sum(cost.values()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--memory-mb", type=int, default=2048, help="ingest Lambda memory")
    args = parser.parse_args(argv)
    source = RESULTS / "ingest_throughput.json"
    if not source.exists():
        print("run bench/ingest_throughput.py first", file=sys.stderr)
        return 2
    measured = json.loads(source.read_text())
    rows, detail = [], {}
    for name in ("corpus", "scifact"):
        if name not in measured:
            continue
        one = per_document(measured[name], args.memory_mb)
        detail[name] = one
        for n in (1_000, 1_000_000):
            rows.append(
                {
                    "set": name,
                    "documents": f"{n:,}",
                    "pages": f"{one['pages'] * n:,.0f}",
                    "Textract pages": f"{one['ocr_pages'] * n:,.0f}",
                    "embed tokens": f"{one['tokens'] * n:,.0f}",
                    "Lambda GB-s": f"{one['lambda_gb_s'] * n:,.0f}",
                    "USD Textract": f"{one['usd_textract'] * n:,.2f}",
                    "USD embeddings": f"{one['usd_embeddings'] * n:,.2f}",
                    "USD Lambda": f"{one['usd_lambda'] * n:,.2f}",
                    "USD total": f"{one['usd_total'] * n:,.2f}",
                }
            )
    print(
        table(
            rows, f"cost of a first ingest (prices taken {PRICES['taken']}; a re-run of unchanged files: ~0)"
        )
    )
    print(f"results: {save('cost', {'prices': PRICES, 'per_document': detail, 'memory_mb': args.memory_mb})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
