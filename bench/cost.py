"""Cost model: what ragstream spends for N documents, from measured counts and public list prices.

Counts per document come from bench/results/ingest_throughput.json (run that first): pages, pages
that needed OCR (Textract in the cloud), chunks and embedding tokens, and the seconds spent outside
embedding (the Lambda's own work). Prices are in PRICES below, with the date they were taken.

The second table is the backfill of a bucket that already holds N objects (default 1,000,000): the
reconcile fanned out over the queue (ragstream.ingest.reconcile), with its requests counted from the code's
own steps (one LIST per 1,000 objects, one BatchGetItem per 100, a mark per record, SQS messages in
batches of ten, a sweep page per 500 records) and each first ingest priced as above. Its time follows
from MaxConcurrency; the per-step and per-document seconds are stated assumptions (flags).

    .venv/bin/python bench/cost.py [--memory-mb 2048] [--objects 1000000] [--concurrency 5]
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
    "s3_get_per_request": 0.0004 / 1000,  # GET and HEAD
    "s3_list_per_request": 0.005 / 1000,
    "dynamodb_on_demand_per_read": 0.25 / 1_000_000,  # per read request unit (strongly consistent <= 4 KB)
}
#: A document when bench/results/ingest_throughput.json is missing: stated, not measured.
ASSUMED_DOCUMENT = {"pages": 4.0, "ocr_pages": 1.0, "chunks": 12.0, "tokens": 2400.0, "own_seconds": 1.5}
#: Seconds of one list step (LIST 1,000, 10 BatchGetItem, 1,000 UpdateItem, 100 SendMessageBatch).
LIST_STEP_SECONDS = 8.0
#: Seconds of one sweep step (one ledger page of 500, nothing to delete).
SWEEP_STEP_SECONDS = 1.0
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


def backfill(
    objects: int,
    doc: dict[str, float],
    *,
    memory_mb: int,
    concurrency: int,
    page: int = 1000,
    sweep: int = 500,
) -> dict[str, float]:
    """Requests, cost and time of a first backfill of ``objects`` objects, none of them in the ledger."""
    gb = memory_mb / 1024
    list_steps = -(-objects // page)
    sweep_steps = -(-objects // sweep)
    steps = list_steps + sweep_steps
    # SQS: each step and each ingest message is sent, received and deleted (batches of 10 where the
    # code or the event source mapping batches: SendMessageBatch, ReceiveMessage, DeleteMessageBatch)
    sqs = steps * 3 + objects / 10 * 3
    s3_list = list_steps
    s3_get = objects * 2  # HeadObject + GetObject per document
    ddb_reads = objects * 2 + objects / 2  # get_many (strong), ledger get before ingest; sweep scan (4 KB/2)
    ddb_writes = objects * 2  # the document's record; the run's mark on the next runs (counted once)
    ocr_pages = doc["ocr_pages"] * objects
    tokens = doc["tokens"] * objects
    embed_seconds = max(1.0, doc["chunks"] / EMBED_BATCH) * EMBED_REQUEST_SECONDS
    doc_seconds = doc["own_seconds"] + embed_seconds
    gb_s = (list_steps * LIST_STEP_SECONDS + sweep_steps * SWEEP_STEP_SECONDS + objects * doc_seconds) * gb
    invocations = steps + objects / 10  # ingest messages arrive in batches of up to 10
    cost = {
        "s3": s3_list * PRICES["s3_list_per_request"] + s3_get * PRICES["s3_get_per_request"],
        "sqs": sqs * PRICES["sqs_per_request"],
        "dynamodb": ddb_reads * PRICES["dynamodb_on_demand_per_read"]
        + ddb_writes * PRICES["dynamodb_on_demand_per_write"],
        "lambda": gb_s * PRICES["lambda_per_gb_second_x86"] + invocations * PRICES["lambda_per_request"],
        "textract": ocr_pages * PRICES["textract_detect_text_per_page"],
        "embeddings": tokens * PRICES["openai_text_embedding_3_small_per_token"],
    }
    # the listing is a chain (one step after the other); the documents run MaxConcurrency at a time
    hours_listing = (list_steps * LIST_STEP_SECONDS + sweep_steps * SWEEP_STEP_SECONDS) / 3600
    hours_documents = objects * doc_seconds / concurrency / 3600
    return {
        "list_steps": list_steps,
        "sweep_steps": sweep_steps,
        "s3_requests": s3_list + s3_get,
        "sqs_requests": sqs,
        "dynamodb_requests": ddb_reads + ddb_writes,
        "lambda_gb_s": gb_s,
        "textract_pages": ocr_pages,
        "embedding_tokens": tokens,
        "hours": max(hours_listing, hours_documents),
        **{f"usd_{k}": v for k, v in cost.items()},
        "usd_total": sum(cost.values()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--memory-mb", type=int, default=2048, help="ingest Lambda memory")
    parser.add_argument("--objects", type=int, default=1_000_000, help="objects of the bucket to backfill")
    parser.add_argument("--concurrency", type=int, default=5, help="MaxConcurrency of the ingest queue")
    args = parser.parse_args(argv)
    source = RESULTS / "ingest_throughput.json"
    measured = json.loads(source.read_text()) if source.exists() else {}
    print_backfill(measured, args.objects, args.memory_mb, args.concurrency)
    if not measured:
        print("run bench/ingest_throughput.py for the measured per-document table", file=sys.stderr)
        return 0
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


def print_backfill(measured: dict[str, Any], objects: int, memory_mb: int, concurrency: int) -> None:
    """The backfill table: per-document figures measured when available, else ASSUMED_DOCUMENT."""
    if "corpus" in measured:
        one = per_document(measured["corpus"], memory_mb)
        steps = measured["corpus"]["first"]["step_seconds"]
        own = sum(v for k, v in steps.items() if k != "embed") / max(
            measured["corpus"]["first"]["documents"], 1
        )
        doc = {**{k: one[k] for k in ("pages", "ocr_pages", "chunks", "tokens")}, "own_seconds": own}
        basis = "per-document counts measured on the corpus (bench/ingest_throughput.py)"
    else:
        doc, basis = (
            dict(ASSUMED_DOCUMENT),
            "per-document counts ASSUMED (no bench/results/ingest_throughput.json)",
        )
    b = backfill(objects, doc, memory_mb=memory_mb, concurrency=concurrency)
    rows = [
        {
            "item": "reconcile steps (list + sweep)",
            "count": f"{b['list_steps']:,.0f} + {b['sweep_steps']:,.0f}",
            "USD": "",
        },
        {
            "item": "S3 LIST + GET/HEAD requests",
            "count": f"{b['s3_requests']:,.0f}",
            "USD": f"{b['usd_s3']:,.2f}",
        },
        {"item": "SQS requests", "count": f"{b['sqs_requests']:,.0f}", "USD": f"{b['usd_sqs']:,.2f}"},
        {
            "item": "DynamoDB read + write units",
            "count": f"{b['dynamodb_requests']:,.0f}",
            "USD": f"{b['usd_dynamodb']:,.2f}",
        },
        {
            "item": f"Lambda GB-s ({memory_mb} MB)",
            "count": f"{b['lambda_gb_s']:,.0f}",
            "USD": f"{b['usd_lambda']:,.2f}",
        },
        {
            "item": "Textract pages",
            "count": f"{b['textract_pages']:,.0f}",
            "USD": f"{b['usd_textract']:,.2f}",
        },
        {
            "item": "embedding tokens",
            "count": f"{b['embedding_tokens']:,.0f}",
            "USD": f"{b['usd_embeddings']:,.2f}",
        },
        {"item": "total", "count": "", "USD": f"{b['usd_total']:,.2f}"},
        {"item": f"wall time at MaxConcurrency {concurrency}", "count": f"{b['hours']:,.1f} h", "USD": ""},
    ]
    for more in (50, 200):
        hours = backfill(objects, doc, memory_mb=memory_mb, concurrency=more)["hours"]
        rows.append({"item": f"wall time at MaxConcurrency {more}", "count": f"{hours:,.1f} h", "USD": ""})
    print(table(rows, f"backfill of {objects:,} objects ({basis}; prices taken {PRICES['taken']})"))
    print(f"results: {save('cost_backfill', {'prices': PRICES, 'document': doc, 'backfill': b})}")


if __name__ == "__main__":
    sys.exit(main())
