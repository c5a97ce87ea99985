"""Indexing that stays true to the bucket, through the real ingest handler.

moto plays S3, SQS and DynamoDB (the bucket notifies the queue for real); every scenario runs on
every vector store (``backends.py``), wrapped by :class:`FaultyIndex` to inject faults; the embedder
is the real local model, wrapped to count what it embeds.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote_plus, unquote_plus

import boto3
import pytest
from moto import mock_aws

from ragstream.blobs import Blobs
from ragstream.config import Settings
from ragstream.embeddings import LocalEmbeddings
from ragstream.errors import IndexUnavailable, TransientError
from ragstream.events import refs_from_event
from ragstream.index import Capabilities, Hit, Point, SearchFilter, VectorIndex, chunk_metadata, point_id
from ragstream.ingest import Pipeline
from ragstream.ledger.dynamodb import DynamoDBLedger, table_definition
from ragstream.model import Status
from tests.support.backends import Backend

ROOT = Path(__file__).resolve().parents[3]
BUCKET, QUEUE, TABLE = "ragstream-docs", "ragstream-ingest", "ragstream-ledger"
REGION = "eu-west-1"


class CountingEmbeddings(LocalEmbeddings):
    """The real local model, counting the texts it embeds (queries excluded)."""

    def __init__(self) -> None:
        super().__init__()
        self.documents = 0

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.documents += len(texts)
        return super().embed_documents(texts)


class FaultyIndex:
    """Wraps any index: can fail the upserts of one source, hold the next upsert, record the source's
    point count around each delete of a watched source, and play an eventually consistent store whose
    counts lag behind its writes (``lagging``)."""

    def __init__(self, inner: VectorIndex) -> None:
        self.inner = inner
        self.collection = inner.collection
        self.capabilities = inner.capabilities
        self.fail_for: str | None = None
        self.watch: str | None = None
        self.seen_counts: list[int] = []
        self.hold: tuple[threading.Event, threading.Event] | None = None
        self.lagging = False
        self.upserts = 0

    def upsert(self, points: Any) -> int:
        self.upserts += 1
        if self.fail_for and any(p.metadata["source"] == self.fail_for for p in points):
            raise IndexUnavailable("the index did not answer after 1 tries: connection refused")
        hold, self.hold = self.hold, None  # only the next upsert is held
        if hold is not None:
            reached, release = hold
            reached.set()
            release.wait(10)
        return self.inner.upsert(points)

    def delete_source(self, source: str, **kwargs: Any) -> None:
        if source == self.watch:
            self.seen_counts.append(self.inner.count(source))
        self.inner.delete_source(source, **kwargs)
        if source == self.watch:
            self.seen_counts.append(self.inner.count(source))

    def ensure_collection(self, dim: int) -> None:
        self.inner.ensure_collection(dim)

    def exists(self) -> bool:
        return self.inner.exists()

    def count(self, source: str | None = None, version: str | None = None) -> int:
        return 0 if self.lagging else self.inner.count(source, version)

    def versions(self) -> Any:
        return Counter() if self.lagging else self.inner.versions()

    def search(self, vector: Any, *, limit: int, flt: SearchFilter | None = None) -> list[Hit]:
        return self.inner.search(vector, limit=limit, flt=flt)

    def ping(self) -> None:
        self.inner.ping()

    def close(self) -> None:
        self.inner.close()


@pytest.fixture(scope="module")
def embedder() -> CountingEmbeddings:
    return CountingEmbeddings()


@pytest.fixture
def aws(aws_env: None) -> Iterator[dict[str, Any]]:
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        queue_url = sqs.create_queue(QueueName=QUEUE)["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        s3.put_bucket_notification_configuration(
            Bucket=BUCKET,
            NotificationConfiguration={
                "QueueConfigurations": [
                    {"QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]}
                ]
            },
        )
        dynamodb.create_table(**table_definition(TABLE))
        yield {"s3": s3, "sqs": sqs, "dynamodb": dynamodb, "queue_url": queue_url, "queue_arn": queue_arn}


@pytest.fixture
def handler(
    aws: dict[str, Any],
    tmp_path: Path,
    embedder: CountingEmbeddings,
    backend: Backend,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[ModuleType]:
    """functions/ingest/app.py as Lambda loads it, with the test's counting embedder and index."""
    if backend.name == "pinecone-live":
        pytest.skip("these scenarios count points right after each event; live Pinecone reads lag its writes")
    monkeypatch.setenv("RAGSTREAM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RAGSTREAM_LEDGER_TABLE", TABLE)
    monkeypatch.setenv("RAGSTREAM_BUCKET", BUCKET)
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "ragstream-ingest")
    spec = importlib.util.spec_from_file_location("ingest_app", ROOT / "functions" / "ingest" / "app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    settings = backend.settings.model_copy(update={"ledger_table": TABLE})
    assert isinstance(settings, Settings)
    module.pipeline = Pipeline.from_settings(
        settings,
        embedder=embedder,
        index=FaultyIndex(backend.open()),
        ledger=DynamoDBLedger(TABLE, client=aws["dynamodb"]),
        store=Blobs(aws["s3"]),
    )
    yield module


class Context:
    function_name = "IngestFunction"
    memory_limit_in_mb = 2048
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:IngestFunction"
    aws_request_id = "c6af9ac6-7b61-11e6-9a41-93e812345678"

    def get_remaining_time_in_millis(self) -> int:
        return 300_000  # the ingest function's timeout; these scenarios never come near it


def drain(aws: dict[str, Any], handler: ModuleType) -> list[dict[str, Any]]:
    """Feed the queue's messages to the handler in Lambda's SQS event shape, as the event source
    mapping does; return the batch item failures of every batch."""
    failures: list[dict[str, Any]] = []
    while True:
        messages = (
            aws["sqs"]
            .receive_message(QueueUrl=aws["queue_url"], MaxNumberOfMessages=10, AttributeNames=["All"])
            .get("Messages", [])
        )
        if not messages:
            return failures
        event = {"Records": [sqs_record(m["Body"], m["MessageId"], aws["queue_arn"]) for m in messages]}
        response = handler.lambda_handler(event, Context())
        failures += response["batchItemFailures"]
        for m in messages:
            aws["sqs"].delete_message(QueueUrl=aws["queue_url"], ReceiptHandle=m["ReceiptHandle"])


def sqs_record(
    body: str, message_id: str, arn: str = "arn:aws:sqs:eu-west-1:123456789012:q"
) -> dict[str, Any]:
    return {
        "messageId": message_id,
        "receiptHandle": "rh-" + message_id,
        "body": body,
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": arn,
        "awsRegion": REGION,
    }


def s3_body(key: str, event: str, sequencer: str, size: int = 10) -> str:
    """An S3 notification as S3 sends it (key URL-encoded), with an explicit sequencer."""
    return json.dumps(
        {
            "Records": [
                {
                    "eventVersion": "2.1",
                    "eventSource": "aws:s3",
                    "awsRegion": REGION,
                    "eventTime": "2024-05-01T12:00:00.000Z",
                    "eventName": event,
                    "s3": {
                        "s3SchemaVersion": "1.0",
                        "bucket": {"name": BUCKET, "arn": f"arn:aws:s3:::{BUCKET}"},
                        "object": {"key": quote_plus(key), "size": size, "eTag": "x", "sequencer": sequencer},
                    },
                }
            ]
        }
    )


def put(aws: dict[str, Any], key: str, text: str) -> None:
    aws["s3"].put_object(Bucket=BUCKET, Key=key, Body=text.encode())


def points_of(handler: ModuleType, key: str) -> int:
    return handler.pipeline.index.count(f"s3://{BUCKET}/{key}")


def doc(topic: str, n: int = 3) -> str:
    return f"# {topic}\n\n" + "\n\n".join(
        f"Paragraph {i} about {topic}: the committee reviewed the {topic} figures and agreed on next steps."
        for i in range(n)
    )


# -- scenarios ---------------------------------------------------------------------------------------------


def test_the_same_event_twice_and_the_same_bytes_again_embed_nothing(
    aws: dict[str, Any], handler: ModuleType, embedder: CountingEmbeddings
) -> None:
    # GIVEN a file uploaded and ingested
    put(aws, "notes/q1 plan+draft.md", doc("budget"))
    assert drain(aws, handler) == []
    indexed = points_of(handler, "notes/q1 plan+draft.md")
    assert indexed > 0
    # WHEN the same notification is delivered twice, and the same bytes are uploaded again
    before = embedder.documents
    body = s3_body("notes/q1 plan+draft.md", "ObjectCreated:Put", "0000000000000001")
    event = {"Records": [sqs_record(body, "m1"), sqs_record(body, "m2")]}
    assert handler.lambda_handler(event, Context())["batchItemFailures"] == []
    put(aws, "notes/q1 plan+draft.md", doc("budget"))
    assert drain(aws, handler) == []
    # THEN nothing was embedded again and the points are the same
    assert embedder.documents == before
    assert points_of(handler, "notes/q1 plan+draft.md") == indexed


def test_an_edit_replaces_the_old_version_without_a_gap(
    aws: dict[str, Any], handler: ModuleType, embedder: CountingEmbeddings
) -> None:
    key = "reports/weekly.md"
    source = f"s3://{BUCKET}/{key}"
    put(aws, key, doc("hiring", 3))
    drain(aws, handler)
    old = handler.pipeline.ledger.get(source)
    # WHEN the file is edited
    handler.pipeline.index.watch = source
    put(aws, key, doc("marketing", 5))
    assert drain(aws, handler) == []
    new = handler.pipeline.ledger.get(source)
    # THEN only the new version's points remain, and the document never vanished on the way
    assert new.version != old.version and new.status is Status.INDEXED
    assert handler.pipeline.index.count(source, old.version) == 0
    assert handler.pipeline.index.count(source, new.version) == new.chunks == points_of(handler, key)
    assert handler.pipeline.index.seen_counts and min(handler.pipeline.index.seen_counts) > 0
    hits = handler.pipeline.index.search(embedder.embed_query("marketing figures"), limit=3)
    assert {h.version for h in hits} == {new.version}


def test_delete_and_a_delete_that_arrives_before_its_create(aws: dict[str, Any], handler: ModuleType) -> None:
    # GIVEN a file indexed, then deleted from the bucket
    put(aws, "a.md", doc("travel"))
    drain(aws, handler)
    aws["s3"].delete_object(Bucket=BUCKET, Key="a.md")
    drain(aws, handler)
    assert points_of(handler, "a.md") == 0
    assert handler.pipeline.ledger.get(f"s3://{BUCKET}/a.md").status is Status.DELETED

    # WHEN a file is created and deleted, and the delete event (newer sequencer) arrives first
    put(aws, "b.md", doc("security"))
    aws["s3"].delete_object(Bucket=BUCKET, Key="b.md")
    aws["sqs"].purge_queue(QueueUrl=aws["queue_url"])
    delete = s3_body("b.md", "ObjectRemoved:Delete", "00000000000000B0")
    create = s3_body("b.md", "ObjectCreated:Put", "00000000000000A0")
    response = handler.lambda_handler(
        {"Records": [sqs_record(delete, "d"), sqs_record(create, "c")]}, Context()
    )
    # THEN the final state matches the bucket: no points, recorded as deleted
    assert response["batchItemFailures"] == []
    assert points_of(handler, "b.md") == 0
    record = handler.pipeline.ledger.get(f"s3://{BUCKET}/b.md")
    assert record.status is Status.DELETED and record.sequencer.endswith("B0")


def test_an_older_event_never_overwrites_a_newer_state(aws: dict[str, Any], handler: ModuleType) -> None:
    put(aws, "c.md", doc("pricing"))
    newer = s3_body("c.md", "ObjectCreated:Put", "0000000000000020")
    older = s3_body("c.md", "ObjectRemoved:Delete", "0000000000000010")
    aws["sqs"].purge_queue(QueueUrl=aws["queue_url"])
    handler.lambda_handler({"Records": [sqs_record(newer, "n")]}, Context())
    handler.lambda_handler({"Records": [sqs_record(older, "o")]}, Context())
    assert handler.pipeline.ledger.get(f"s3://{BUCKET}/c.md").status is Status.INDEXED
    assert points_of(handler, "c.md") > 0


def test_a_batch_with_a_corrupt_file_and_the_index_down_for_one(
    aws: dict[str, Any], handler: ModuleType
) -> None:
    # GIVEN ten uploads: eight good, one corrupt PDF, one whose upsert finds the index down
    aws["sqs"].purge_queue(QueueUrl=aws["queue_url"])  # S3's s3:TestEvent of the notification setup
    for i in range(8):
        put(aws, f"batch/good-{i}.md", doc(f"topic {i}"))
    aws["s3"].put_object(Bucket=BUCKET, Key="batch/corrupt.pdf", Body=b"%PDF-1.4\n\x00\x01 not really a pdf")
    put(aws, "batch/unlucky.md", doc("outage"))
    handler.pipeline.index.fail_for = f"s3://{BUCKET}/batch/unlucky.md"
    messages = aws["sqs"].receive_message(QueueUrl=aws["queue_url"], MaxNumberOfMessages=10)["Messages"]
    assert len(messages) == 10
    event = {"Records": [sqs_record(m["Body"], m["MessageId"]) for m in messages]}
    by_key = {
        unquote_plus(json.loads(m["Body"])["Records"][0]["s3"]["object"]["key"]): m["MessageId"]
        for m in messages
    }
    # WHEN the handler takes the batch
    response = handler.lambda_handler(event, Context())
    # THEN only the one the index refused goes back to the queue; the corrupt one is failed and acknowledged
    assert response["batchItemFailures"] == [{"itemIdentifier": by_key["batch/unlucky.md"]}]
    ledger = handler.pipeline.ledger
    corrupt = ledger.get(f"s3://{BUCKET}/batch/corrupt.pdf")
    assert corrupt.status is Status.FAILED and not corrupt.retryable and corrupt.error
    unlucky = ledger.get(f"s3://{BUCKET}/batch/unlucky.md")
    assert unlucky.status is Status.FAILED and unlucky.retryable
    for i in range(8):
        assert ledger.get(f"s3://{BUCKET}/batch/good-{i}.md").status is Status.INDEXED
        assert points_of(handler, f"batch/good-{i}.md") > 0
    # AND when the index is back, the redelivered message indexes it
    handler.pipeline.index.fail_for = None
    retry = {"Records": [r for r in event["Records"] if r["messageId"] == by_key["batch/unlucky.md"]]}
    assert handler.lambda_handler(retry, Context())["batchItemFailures"] == []
    assert ledger.get(f"s3://{BUCKET}/batch/unlucky.md").status is Status.INDEXED


def test_reconcile_repairs_lost_events(
    aws: dict[str, Any], handler: ModuleType, embedder: CountingEmbeddings
) -> None:
    pipeline: Pipeline = handler.pipeline
    put(aws, "keep.md", doc("keep"))
    put(aws, "vanish.md", doc("vanish"))
    drain(aws, handler)
    # GIVEN events were lost: an object put and one deleted with no notification, and stray points
    aws["s3"].put_bucket_notification_configuration(Bucket=BUCKET, NotificationConfiguration={})
    put(aws, "silent-new.md", doc("silent"))
    aws["s3"].delete_object(Bucket=BUCKET, Key="vanish.md")
    stray = point_id(f"s3://{BUCKET}/keep.md", "0" * 64, 0)
    pipeline.index.upsert(
        [
            Point(
                id=stray,
                vector=[0.1] * 384,
                text="old text",
                metadata=chunk_metadata(source=f"s3://{BUCKET}/keep.md", version="0" * 64, chunk_index=0),
            )
        ]
    )
    before = embedder.documents
    # WHEN reconcile runs over the bucket
    outcomes = pipeline.sync(f"s3://{BUCKET}/", repair=True)
    # THEN the index matches the bucket again
    assert sorted((o.source.rsplit("/", 1)[-1], o.status) for o in outcomes) == [
        ("keep.md", "repaired"),
        ("keep.md", "skipped"),
        ("silent-new.md", "indexed"),
        ("vanish.md", "deleted"),
    ]
    assert points_of(handler, "silent-new.md") > 0 and points_of(handler, "vanish.md") == 0
    keep = pipeline.ledger.get(f"s3://{BUCKET}/keep.md")
    assert pipeline.index.count(f"s3://{BUCKET}/keep.md") == keep.chunks  # the stray point is gone
    assert embedder.documents - before == pipeline.ledger.get(f"s3://{BUCKET}/silent-new.md").chunks
    # AND a second reconcile finds nothing to do
    again = pipeline.sync(f"s3://{BUCKET}/", repair=True)
    assert {o.status for o in again} == {"skipped"}


def test_two_concurrent_runs_on_one_key_end_with_the_newest(aws: dict[str, Any], handler: ModuleType) -> None:
    # Two Lambda containers: two pipelines sharing only the ledger, the index and the bucket.
    first: Pipeline = handler.pipeline
    second = dataclasses.replace(first)
    index: FaultyIndex = first.index  # type: ignore[assignment]
    source = f"s3://{BUCKET}/race.md"
    put(aws, "race.md", doc("version one"))
    older = refs_from_event(json.loads(s3_body("race.md", "ObjectCreated:Put", "0000000000000100")))
    newer = refs_from_event(json.loads(s3_body("race.md", "ObjectCreated:Put", "0000000000000200")))
    # GIVEN a run of the older event that has read v1 and is held just before its upsert
    reached, release = threading.Event(), threading.Event()
    index.hold = (reached, release)
    results: dict[str, Any] = {}
    slow = threading.Thread(target=lambda: results.update(old=first.run(older)))
    slow.start()
    assert reached.wait(10)
    # WHEN a run of the newer event (v2) goes all the way meanwhile, and then the old one finishes
    put(aws, "race.md", doc("version two", 4))
    assert [o.status for o in second.run(newer)] == ["indexed"]
    release.set()
    slow.join(20)
    # THEN exactly the newest version is indexed, and the old run ended as stale (acknowledged)
    assert [o.status for o in results["old"]] == ["stale"]
    record = first.ledger.get(source)
    assert record.sequencer.endswith("200") and record.status is Status.INDEXED
    versions = {v for (s, v) in first.index.versions() if s == source}
    assert versions == {record.version}
    assert first.index.count(source) == record.chunks


def test_the_handler_emits_cloudwatch_metrics_per_outcome(
    aws: dict[str, Any], handler: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    put(aws, "metrics/ok.md", doc("metrics"))
    aws["s3"].put_object(Bucket=BUCKET, Key="metrics/empty.txt", Body=b"")
    capsys.readouterr()
    drain(aws, handler)
    blobs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    emitted: dict[str, float] = {}
    for blob in blobs:
        for name in (m["Name"] for m in blob["_aws"]["CloudWatchMetrics"][0]["Metrics"]):
            value = blob[name]
            emitted[name] = emitted.get(name, 0) + (sum(value) if isinstance(value, list) else value)
    assert emitted["DocumentsIndexed"] >= 1 and emitted["DocumentsFailed"] == 1 and emitted["Chunks"] >= 1
    assert blobs[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "ragstream"


def test_versioned_bucket_deleting_an_old_version_keeps_the_live_document(
    aws: dict[str, Any], handler: ModuleType
) -> None:
    # GIVEN a versioned bucket and a document with two versions, the second one indexed
    aws["s3"].put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    put(aws, "v.md", doc("budget"))
    put(aws, "v.md", doc("pensions"))
    drain(aws, handler)
    versions = aws["s3"].list_object_versions(Bucket=BUCKET, Prefix="v.md")["Versions"]
    old = next(v["VersionId"] for v in versions if not v["IsLatest"])
    live = points_of(handler, "v.md")
    assert live > 0

    # WHEN the old version is deleted: S3 notifies ObjectRemoved:Delete with that versionId
    # (moto sends no notification for version deletes; the event is the one S3 sends)
    aws["s3"].delete_object(Bucket=BUCKET, Key="v.md", VersionId=old)
    assert _apply(handler, _removed("v.md", "ObjectRemoved:Delete", "00000000000000C0", old)) == []

    # THEN the live document stays indexed, as it is in the bucket
    assert points_of(handler, "v.md") == live
    assert handler.pipeline.ledger.get(f"s3://{BUCKET}/v.md").status is Status.INDEXED

    # WHEN a delete marker is put on top (a plain delete in a versioned bucket)
    marker = aws["s3"].delete_object(Bucket=BUCKET, Key="v.md")["VersionId"]
    _apply(handler, _removed("v.md", "ObjectRemoved:DeleteMarkerCreated", "00000000000000D0", marker))
    # THEN the document is gone from the index
    assert points_of(handler, "v.md") == 0
    assert handler.pipeline.ledger.get(f"s3://{BUCKET}/v.md").status is Status.DELETED

    # WHEN the delete marker is removed, which brings the object back (S3 sends no ObjectCreated)
    aws["s3"].delete_object(Bucket=BUCKET, Key="v.md", VersionId=marker)
    _apply(handler, _removed("v.md", "ObjectRemoved:Delete", "00000000000000E0", marker))
    # THEN it is indexed again
    assert points_of(handler, "v.md") == live
    assert handler.pipeline.ledger.get(f"s3://{BUCKET}/v.md").status is Status.INDEXED


def _removed(key: str, event: str, sequencer: str, version_id: str) -> str:
    """An ObjectRemoved notification of a versioned bucket, as S3 sends it (no size, no ETag)."""
    body = json.loads(s3_body(key, event, sequencer))
    obj = body["Records"][0]["s3"]["object"]
    del obj["size"], obj["eTag"]
    obj["versionId"] = version_id
    return json.dumps(body)


def _apply(handler: ModuleType, body: str) -> list[dict[str, Any]]:
    failures: list[dict[str, Any]] = handler.lambda_handler(
        {"Records": [sqs_record(body, "m-" + body[-40:])]}, Context()
    )["batchItemFailures"]
    return failures


def test_the_scheduled_reconcile_fans_out_over_the_queue_through_the_handler(
    aws: dict[str, Any], handler: ModuleType, embedder: CountingEmbeddings
) -> None:
    # GIVEN the handler as deployed: it knows its bucket and its queue
    from ragstream.ingest.queue import WorkQueue

    handler.settings = handler.settings.model_copy(update={"bucket": BUCKET})
    handler.queue = WorkQueue(aws["queue_url"], client=aws["sqs"])
    put(aws, "keep.md", doc("keep"))
    put(aws, "vanish.md", doc("vanish"))
    drain(aws, handler)
    # AND events were lost: an object put and one deleted with no notification
    aws["s3"].put_bucket_notification_configuration(Bucket=BUCKET, NotificationConfiguration={})
    put(aws, "silent-new.md", doc("silent"))
    aws["s3"].delete_object(Bucket=BUCKET, Key="vanish.md")
    before = embedder.documents
    # WHEN the schedule invokes the function, and the queue is worked off
    started = handler.lambda_handler(
        json.loads((ROOT / "events" / "schedule-reconcile.json").read_text()), Context()
    )
    assert set(started) == {"reconcile"}
    assert drain(aws, handler) == []
    # THEN the new object is indexed, the vanished one deleted, the kept one untouched
    ledger = handler.pipeline.ledger
    assert points_of(handler, "silent-new.md") > 0 and points_of(handler, "vanish.md") == 0
    assert ledger.get(f"s3://{BUCKET}/vanish.md").status is Status.DELETED
    assert ledger.get(f"s3://{BUCKET}/keep.md").seen_run == started["reconcile"]
    assert embedder.documents - before == ledger.get(f"s3://{BUCKET}/silent-new.md").chunks


def test_a_direct_eventbridge_invocation_is_applied_within_the_time_left(
    aws: dict[str, Any], handler: ModuleType
) -> None:
    # GIVEN an object and its EventBridge event, invoked directly (no queue)
    put(aws, "direct.md", doc("direct"))
    event = json.loads((ROOT / "events" / "eventbridge-object-created.json").read_text())
    event["detail"]["object"].update(key="direct.md", size=100)

    class Late(Context):
        def get_remaining_time_in_millis(self) -> int:
            return 25_000  # less than a document needs, after the reserve

    # WHEN it arrives with too little time left, THEN it is handed back for Lambda's retry, untouched
    with pytest.raises(TransientError, match="parked"):
        handler.lambda_handler(event, Late())
    assert handler.pipeline.ledger.get(f"s3://{BUCKET}/direct.md") is None
    # WHEN it arrives with time, THEN it is indexed
    result = handler.lambda_handler(event, Context())
    assert [o["status"] for o in result["outcomes"]] == ["indexed"]
    assert points_of(handler, "direct.md") > 0


def test_an_eventually_consistent_store_is_not_recounted(
    aws: dict[str, Any], handler: ModuleType, embedder: CountingEmbeddings
) -> None:
    # GIVEN a store that declares inexact counts, and whose counts lag behind its writes
    pipeline: Pipeline = handler.pipeline
    index: FaultyIndex = pipeline.index  # type: ignore[assignment]
    index.capabilities = Capabilities(exact_counts=False, read_your_writes=False)
    index.lagging = True
    put(aws, "ec.md", doc("lagging"))
    assert drain(aws, handler) == []
    # WHEN the document is replaced
    put(aws, "ec.md", doc("lagging again", 4))
    before = index.upserts
    assert drain(aws, handler) == []
    # THEN its points are written once: the lagging count does not look like vanished points
    assert index.upserts - before == 1
    assert pipeline.ledger.get(f"s3://{BUCKET}/ec.md").status is Status.INDEXED
    # AND reconcile does not take the lagging tally for missing points and re-index everything
    embedded = embedder.documents
    outcomes = pipeline.sync(f"s3://{BUCKET}/", repair=True)
    assert {o.status for o in outcomes} == {"skipped"} and embedder.documents == embedded
