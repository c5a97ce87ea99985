"""Reconcile of a bucket of 20,000 objects, fanned out over the ingest queue.

moto plays S3 (20,000 tiny objects) and SQS; the ledger is SQLite (the ledger contract suite holds
DynamoDB to the same get_many / mark behaviour), seeded with the records an earlier ingest left;
Qdrant is embedded and the embedder is the real local model. Each message is one invocation with
its own 300 s budget, as the event source mapping delivers it.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.s3.models import s3_backends
from qdrant_client import QdrantClient

from ragstream.blobs import Blobs
from ragstream.budget import Deadline
from ragstream.config import Settings
from ragstream.embeddings import LocalEmbeddings
from ragstream.index.qdrant import QdrantIndex
from ragstream.ingest import Outcome, Pipeline
from ragstream.ingest.dispatch import apply_message
from ragstream.ingest.queue import WorkQueue
from ragstream.ingest.reconcile import start_run
from ragstream.ledger.sqlite import SQLiteLedger
from ragstream.model import DocumentRecord, Status

BUCKET, REGION = "ragstream-backfill", "eu-west-1"
OBJECTS = 20_000
NEW = range(0, 40)  # in the bucket, not in the ledger (their events were lost)
CHANGED = range(40, 60)  # in the ledger with another ETag
GONE = 30  # in the ledger, not in the bucket


def body(i: int) -> bytes:
    return f"# Memo {i}\n\nItem {i} of the archive.".encode()


@pytest.fixture
def aws(aws_env: None) -> Iterator[dict[str, Any]]:
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
        for i in range(OBJECTS):  # straight into moto's store: 20,000 PutObject calls would take a minute
            backend.put_object(BUCKET, f"archive/{i:05d}.md", body(i))
        sqs = boto3.client("sqs", region_name=REGION)
        queue_url = sqs.create_queue(QueueName="ingest")["QueueUrl"]
        yield {"s3": s3, "sqs": sqs, "queue_url": queue_url}


@pytest.fixture
def pipeline(aws: dict[str, Any], tmp_path: Path) -> Iterator[Pipeline]:
    settings = Settings(home=tmp_path, reconcile_page_size=1000, sweep_page_size=500)
    ledger = SQLiteLedger(tmp_path / "ledger.sqlite")
    built = Pipeline.from_settings(
        settings,
        embedder=LocalEmbeddings(),
        index=QdrantIndex(QdrantClient(":memory:"), "ragstream", batch_size=256, retries=0),
        ledger=ledger,
        store=Blobs(aws["s3"]),
    )
    # the earlier ingest: every object but the new ones recorded (the changed ones with an old ETag),
    # and records of objects deleted since, whose delete events were lost
    earlier = datetime(2024, 1, 1, tzinfo=UTC)
    for i in range(OBJECTS):
        if i in NEW:
            continue
        etag = "0" * 32 if i in CHANGED else hashlib.md5(body(i)).hexdigest()  # S3's ETag (one part)
        ledger.put(_indexed(f"s3://{BUCKET}/archive/{i:05d}.md", etag, settings.fingerprint, earlier))
    for g in range(GONE):
        ledger.put(_indexed(f"s3://{BUCKET}/removed/{g:03d}.md", "1" * 32, settings.fingerprint, earlier))
    yield built
    built.index.close()
    ledger.close()


def _indexed(source: str, etag: str, fingerprint: str, when: datetime) -> DocumentRecord:
    return DocumentRecord(
        source=source,
        status=Status.INDEXED,
        version="a" * 64,
        sequencer="0055",
        fingerprint=fingerprint,
        etag=etag,
        chunks=1,
        updated_at=when,
    )


class Invocation:
    """What one invocation did, seen on the wire: objects listed, records read, messages sent."""

    def __init__(self) -> None:
        self.listed = 0
        self.sent = 0


def test_reconcile_of_20000_objects_is_fanned_out_in_bounded_steps(
    aws: dict[str, Any], pipeline: Pipeline
) -> None:
    # GIVEN the queue, and the wire observed: objects per ListObjectsV2 page, messages sent
    current = Invocation()

    def listed(parsed: dict[str, Any], **_: Any) -> None:
        current.listed += len(parsed.get("Contents", []))

    def sent(params: dict[str, Any], model: Any, **_: Any) -> None:
        current.sent += len(params.get("Entries", [])) if model.name == "SendMessageBatch" else 1

    aws["s3"].meta.events.register("after-call.s3.ListObjectsV2", listed)
    aws["sqs"].meta.events.register("before-parameter-build.sqs", sent)
    queue = WorkQueue(aws["queue_url"], client=aws["sqs"])

    # WHEN the schedule starts a run (it only sends the first step)
    step = start_run(f"s3://{BUCKET}/", queue)
    assert (current.listed, current.sent) == (0, 1)

    # AND the queue is worked off, one message per invocation (each with a 300 s context)
    invocations: list[tuple[str, Invocation, list[Outcome]]] = []
    for _ in range(1000):
        messages = (
            aws["sqs"].receive_message(QueueUrl=aws["queue_url"], MaxNumberOfMessages=1).get("Messages", [])
        )
        if not messages:
            break
        [message] = messages
        current = Invocation()
        kind = json.loads(message["Body"]).get("step") or json.loads(message["Body"]).get("kind") or "event"
        deadline = Deadline.from_millis(lambda: 300_000)
        outcomes = apply_message(message["Body"], pipeline, queue=queue, deadline=deadline)
        aws["sqs"].delete_message(QueueUrl=aws["queue_url"], ReceiptHandle=message["ReceiptHandle"])
        invocations.append((kind, current, outcomes))
    else:
        raise AssertionError("the run did not end")

    # THEN the listing took 20 steps of one page each, and no invocation handled more than a page
    kinds = Counter(kind for kind, _, _ in invocations)
    assert kinds["list"] == OBJECTS // 1000
    # the sweep pages through the ledger: 20,030 records, or 19,990 if it ran before the new were indexed
    assert kinds["sweep"] in (-(-(OBJECTS - len(NEW) + GONE) // 500), -(-(OBJECTS + GONE) // 500))
    assert max(inv.listed for _, inv, _ in invocations) == 1000
    assert max(inv.sent for _, inv, _ in invocations) <= 1000 + 1  # a page's changed objects + the next step
    # AND exactly the new and changed objects were sent to be indexed, and were indexed
    ingested = [o for kind, _, outs in invocations if kind == "ragstream.ingest" for o in outs]
    assert sorted(o.source for o in ingested) == sorted(
        f"s3://{BUCKET}/archive/{i:05d}.md" for i in [*NEW, *CHANGED]
    )
    assert {o.status for o in ingested} == {"indexed"}
    # AND the objects gone from the bucket were found by the sweep and deleted
    swept = [o for kind, _, outs in invocations if kind == "sweep" for o in outs]
    assert sorted(o.source for o in swept) == [f"s3://{BUCKET}/removed/{g:03d}.md" for g in range(GONE)]
    assert {o.status for o in swept} == {"deleted"}
    gone = pipeline.ledger.get(f"s3://{BUCKET}/removed/007.md")
    assert gone is not None and gone.status is Status.DELETED
    # AND every listed record carries the run's mark; the unchanged ones were not touched otherwise
    unchanged = pipeline.ledger.get(f"s3://{BUCKET}/archive/12345.md")
    assert unchanged is not None and unchanged.seen_run == step.run and unchanged.version == "a" * 64
    assert pipeline.ledger.get(f"s3://{BUCKET}/archive/00003.md").status is Status.INDEXED  # type: ignore[union-attr]


def test_a_second_run_finds_nothing_to_do(aws: dict[str, Any], pipeline: Pipeline) -> None:
    # GIVEN a bucket whose ledger is in sync after a first run
    queue = WorkQueue(aws["queue_url"], client=aws["sqs"])
    for _ in range(2):
        start_run(f"s3://{BUCKET}/archive/00", queue)  # a prefix: 1,000 objects, new and changed among them
        sent_to_index = 0
        while (
            messages := aws["sqs"]
            .receive_message(QueueUrl=aws["queue_url"], MaxNumberOfMessages=10)
            .get("Messages", [])
        ):
            for m in messages:
                sent_to_index += json.loads(m["Body"]).get("kind") == "ragstream.ingest"
                apply_message(m["Body"], pipeline, queue=queue)
                aws["sqs"].delete_message(QueueUrl=aws["queue_url"], ReceiptHandle=m["ReceiptHandle"])
    # THEN the second run sent nothing to be indexed and deleted nothing
    assert sent_to_index == 0
    assert pipeline.ledger.list(status=Status.DELETED)[0] == []
