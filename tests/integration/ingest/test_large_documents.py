"""Large documents within the Lambda time budget.

A 1,000-page scan and a 3,000-page PDF go through Textract's asynchronous API (the botocore Stubber
plays Textract: moto has no asynchronous text detection). The invocation's remaining time comes from
a test double of Lambda's context whose clock only moves when the code sleeps between polls, so the
budget is exact. moto plays S3, SQS (its clock fast-forwarded past message delays) and DynamoDB.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import moto.sqs.models
import pytest
from botocore.stub import Stubber
from moto import mock_aws
from qdrant_client import QdrantClient

from ragstream.blobs import Blobs
from ragstream.budget import Deadline
from ragstream.config import Settings
from ragstream.embeddings import LocalEmbeddings
from ragstream.extract import textract as textract_mod
from ragstream.index.qdrant import QdrantIndex
from ragstream.ingest import Outcome, Pipeline
from ragstream.ingest.dispatch import apply_message
from ragstream.ingest.queue import WorkQueue
from ragstream.ledger.dynamodb import DynamoDBLedger, table_definition
from ragstream.model import Status
from tests.support.pdfgen import scanned_pdf

BUCKET, TABLE, REGION = "ragstream-large", "ragstream-ledger", "eu-west-1"
BUDGET_MS = 300_000  # the ingest function's timeout


class Clock:
    """Seconds of simulated time: moved by the code's sleeps between Textract polls, and by the test."""

    def __init__(self) -> None:
        self.now = 0.0

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class FakeLambdaContext:
    """A test double of AWS Lambda's context object: only the remaining time matters here."""

    def __init__(self, clock: Clock, budget_ms: int = BUDGET_MS) -> None:
        self.clock = clock
        self.ends_at = clock.now + budget_ms / 1000

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.ends_at - self.clock.now) * 1000))


class CountingEmbeddings(LocalEmbeddings):
    def __init__(self) -> None:
        super().__init__()
        self.texts = 0

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.texts += len(texts)
        return super().embed_documents(texts)


@pytest.fixture(scope="module")
def embedder() -> CountingEmbeddings:
    return CountingEmbeddings()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(textract_mod, "_sleep", clock.sleep)
    real = moto.sqs.models.unix_time_millis
    # SQS's clock runs with ours, so a message delayed by N simulated seconds shows after them
    monkeypatch.setattr(moto.sqs.models, "unix_time_millis", lambda: real() + clock.now * 1000)
    return clock


@pytest.fixture
def aws(aws_env: None) -> Iterator[dict[str, Any]]:
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        sqs = boto3.client("sqs", region_name=REGION)
        queue_url = sqs.create_queue(QueueName="ingest")["QueueUrl"]
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        dynamodb.create_table(**table_definition(TABLE))
        yield {"s3": s3, "sqs": sqs, "dynamodb": dynamodb, "queue_url": queue_url}


@pytest.fixture
def textract() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client("textract", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stubber:
        yield client, stubber


@pytest.fixture
def pipeline(
    aws: dict[str, Any], textract: tuple[Any, Stubber], embedder: CountingEmbeddings, tmp_path: Path
) -> Iterator[Pipeline]:
    settings = Settings(home=tmp_path, ledger_table=TABLE, ocr="textract")
    built = Pipeline.from_settings(
        settings,
        embedder=embedder,
        index=QdrantIndex(QdrantClient(":memory:"), "ragstream", batch_size=256, retries=0),
        ledger=DynamoDBLedger(TABLE, client=aws["dynamodb"]),
        store=Blobs(aws["s3"]),
        textract=textract[0],
    )
    yield built
    built.index.close()


def s3_event(key: str, sequencer: str, size: int) -> str:
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": REGION,
        "eventTime": "2024-05-01T12:00:00.000Z",
        "eventName": "ObjectCreated:Put",
        "s3": {
            "bucket": {"name": BUCKET, "arn": f"arn:aws:s3:::{BUCKET}"},
            "object": {"key": key, "size": size, "eTag": "e", "sequencer": sequencer},
        },
    }
    return json.dumps({"Records": [record]})


def lines_of(pages: range, per_page: int = 2) -> list[dict[str, Any]]:
    """Textract LINE blocks: ``per_page`` lines on each of ``pages`` (the others blank: every page with
    text is a chunk at least, and the embedding is real, so the tests keep their number small)."""
    return [
        {
            "BlockType": "LINE",
            "Id": f"l{page}-{i}",
            "Page": page,
            "Text": f"Page {page}: {page * 7 + i} euros.",  # short: the embedding is real and costs time
            "Geometry": {"BoundingBox": {"Left": 0.1, "Top": 0.1 + 0.05 * i, "Width": 0.6, "Height": 0.02}},
        }
        for page in pages
        for i in range(per_page)
    ]


def queue_results(stubber: Stubber, job: str, blocks: list[dict[str, Any]], pages: int) -> None:
    """Textract's answer of a finished job, 1,000 blocks per GetDocumentTextDetection, NextToken chained."""
    parts = [blocks[i : i + 1000] for i in range(0, len(blocks), 1000)]
    for n, part in enumerate(parts):
        response: dict[str, Any] = {
            "JobStatus": "SUCCEEDED",
            "DocumentMetadata": {"Pages": pages},
            "Blocks": part,
        }
        if n + 1 < len(parts):
            response["NextToken"] = f"t{n + 1}"
        params: dict[str, Any] = {"JobId": job, "MaxResults": 1000}
        if n:
            params["NextToken"] = f"t{n}"
        stubber.add_response("get_document_text_detection", response, params)


def calls(client: Any) -> list[str]:
    """Record the Textract operations the code makes, in order."""
    made: list[str] = []
    client.meta.events.register("before-parameter-build.textract", lambda model, **_: made.append(model.name))
    return made


def deliver(
    aws: dict[str, Any], pipeline: Pipeline, queue: WorkQueue, clock: Clock
) -> list[tuple[list[Outcome], float, float]]:
    """One Lambda invocation per batch of visible messages, as the event source mapping does; each
    with its own context of BUDGET_MS. Returns (outcomes, seconds used, seconds of budget) per call."""
    invocations = []
    for _ in range(20):
        messages = (
            aws["sqs"].receive_message(QueueUrl=aws["queue_url"], MaxNumberOfMessages=10).get("Messages", [])
        )
        if not messages:
            clock.now += 900  # the longest delay: parked messages show again
            messages = (
                aws["sqs"]
                .receive_message(QueueUrl=aws["queue_url"], MaxNumberOfMessages=10)
                .get("Messages", [])
            )
            if not messages:
                return invocations
        context = FakeLambdaContext(clock)
        began = clock.now
        outcomes: list[Outcome] = []
        for m in messages:  # the records of one batch share the invocation's time
            deadline = Deadline.from_millis(context.get_remaining_time_in_millis)
            outcomes += apply_message(m["Body"], pipeline, queue=queue, deadline=deadline)
            aws["sqs"].delete_message(QueueUrl=aws["queue_url"], ReceiptHandle=m["ReceiptHandle"])
        invocations.append((outcomes, clock.now - began, BUDGET_MS / 1000))
    raise AssertionError("the queue never drained")


def test_a_1000_page_scan_is_parked_and_resumed_without_blocking_its_batch_mates(
    aws: dict[str, Any],
    pipeline: Pipeline,
    textract: tuple[Any, Stubber],
    clock: Clock,
    embedder: CountingEmbeddings,
) -> None:
    # GIVEN a 1,000-page scan and a small note uploaded together, their events in one batch
    client, stubber = textract
    made = calls(client)
    scan = scanned_pdf(1000)
    aws["s3"].put_object(Bucket=BUCKET, Key="archive/scan.pdf", Body=scan)
    aws["s3"].put_object(
        Bucket=BUCKET, Key="notes/todo.md", Body=b"# Todo\n\nRenew the office lease by June."
    )
    queue = WorkQueue(aws["queue_url"], client=aws["sqs"])
    aws["sqs"].send_message(
        QueueUrl=aws["queue_url"], MessageBody=s3_event("archive/scan.pdf", "A1", len(scan))
    )
    aws["sqs"].send_message(QueueUrl=aws["queue_url"], MessageBody=s3_event("notes/todo.md", "A2", 40))
    # Textract: the job runs for about 25 polls (some 8 minutes), then 1,250 lines in 2 pages of results
    stubber.add_response("start_document_text_detection", {"JobId": "job-1000"})
    for _ in range(25):
        stubber.add_response(
            "get_document_text_detection",
            {"JobStatus": "IN_PROGRESS"},
            {"JobId": "job-1000", "MaxResults": 1000},
        )
    queue_results(stubber, "job-1000", lines_of(range(1, 1001, 4), per_page=5), 1000)

    # WHEN the queue is worked off by invocations of 300 s each
    invocations = deliver(aws, pipeline, queue, clock)

    # THEN no invocation ran into its timeout
    assert all(used < budget for _, used, budget in invocations), [(u, b) for _, u, b in invocations]
    first = {o.source.rsplit("/", 1)[-1]: o for o in invocations[0][0]}
    # AND the note was indexed in the first invocation, once, next to the parked scan
    assert first["todo.md"].status == "indexed"
    assert first["scan.pdf"].status == "pending" and (first["scan.pdf"].retry_after or 0) > 0
    statuses = [o.status for outcomes, _, _ in invocations for o in outcomes if o.source.endswith("todo.md")]
    assert statuses == ["indexed"]
    # AND while parked, the ledger holds the job id
    # (checked through the calls: the job was started once and resumed by its id, never restarted)
    assert made.count("StartDocumentTextDetection") == 1
    assert "DetectDocumentText" not in made
    stubber.assert_no_pending_responses()
    record = pipeline.ledger.get(f"s3://{BUCKET}/archive/scan.pdf")
    assert record is not None and record.status is Status.INDEXED and record.job_id is None
    assert (record.pages, record.ocr_pages) == (1000, 1000)
    assert pipeline.index.count(f"s3://{BUCKET}/archive/scan.pdf") == record.chunks > 0
    assert len(invocations) >= 3  # parked at least twice: the job outlived two invocations


def test_while_parked_the_ledger_holds_the_job_and_the_old_version_still_answers(
    aws: dict[str, Any], pipeline: Pipeline, textract: tuple[Any, Stubber], clock: Clock
) -> None:
    # GIVEN a scan whose Textract job outlives the invocation
    _, stubber = textract
    scan = scanned_pdf(40)
    aws["s3"].put_object(Bucket=BUCKET, Key="scan.pdf", Body=scan)
    stubber.add_response("start_document_text_detection", {"JobId": "job-40"})
    for _ in range(30):
        stubber.add_response("get_document_text_detection", {"JobStatus": "IN_PROGRESS"})
    queue = WorkQueue(aws["queue_url"], client=aws["sqs"])
    context = FakeLambdaContext(clock, budget_ms=120_000)
    # WHEN its event is applied
    [outcome] = apply_message(
        s3_event("scan.pdf", "B1", len(scan)),
        pipeline,
        queue=queue,
        deadline=Deadline.from_millis(context.get_remaining_time_in_millis),
    )
    # THEN it is parked before the time runs out, with its job id in the ledger
    assert outcome.status == "pending"
    assert context.get_remaining_time_in_millis() >= 15_000  # the reserve was kept
    record = pipeline.ledger.get(f"s3://{BUCKET}/scan.pdf")
    assert record is not None and (record.status, record.job_id) == (Status.PENDING, "job-40")
    # AND its event went back to the queue with a delay (not visible yet)
    attributes = aws["sqs"].get_queue_attributes(QueueUrl=aws["queue_url"], AttributeNames=["All"])[
        "Attributes"
    ]
    assert attributes["ApproximateNumberOfMessagesDelayed"] == "1"


def test_a_3000_page_pdf_with_a_text_page_is_one_async_job_never_a_loop_of_sync_calls(
    aws: dict[str, Any], pipeline: Pipeline, textract: tuple[Any, Stubber], clock: Clock
) -> None:
    # GIVEN a 3,000-page PDF (Textract's asynchronous limit) whose first page has a text layer
    client, stubber = textract
    made = calls(client)
    pdf = scanned_pdf(3000, text_pages=frozenset({1}))
    aws["s3"].put_object(Bucket=BUCKET, Key="big.pdf", Body=pdf)
    stubber.add_response("start_document_text_detection", {"JobId": "job-3000"})
    for _ in range(8):
        stubber.add_response("get_document_text_detection", {"JobStatus": "IN_PROGRESS"})
    queue_results(stubber, "job-3000", lines_of(range(2, 3001, 10), per_page=1), 3000)
    queue = WorkQueue(aws["queue_url"], client=aws["sqs"])
    aws["sqs"].send_message(QueueUrl=aws["queue_url"], MessageBody=s3_event("big.pdf", "C1", len(pdf)))

    # WHEN it is worked off in invocations of 300 s
    invocations = deliver(aws, pipeline, queue, clock)

    # THEN one job read it (started once, results paged), with no synchronous call per page
    assert made.count("StartDocumentTextDetection") == 1
    assert "DetectDocumentText" not in made
    assert made.count("GetDocumentTextDetection") == 8 + 1
    stubber.assert_no_pending_responses()
    assert all(used < budget for _, used, budget in invocations)
    record = pipeline.ledger.get(f"s3://{BUCKET}/big.pdf")
    assert record is not None and record.status is Status.INDEXED
    assert (record.pages, record.ocr_pages, record.engine) == (3000, 3000, "pdf_text+textract")
    # AND the text page kept its own text layer; the scanned pages took Textract's
    hits = pipeline.index.count(f"s3://{BUCKET}/big.pdf")
    assert hits == record.chunks > 0


def test_a_document_is_not_started_without_time_to_finish_it(
    aws: dict[str, Any], pipeline: Pipeline, clock: Clock, embedder: CountingEmbeddings
) -> None:
    # GIVEN an invocation with 30 s left, 15 of them the reserve
    aws["s3"].put_object(Bucket=BUCKET, Key="late.md", Body=b"# Late\n\nArrived at the end of a batch.")
    queue = WorkQueue(aws["queue_url"], client=aws["sqs"])
    context = FakeLambdaContext(clock, budget_ms=30_000)
    before = embedder.texts
    # WHEN its event is applied
    [outcome] = apply_message(
        s3_event("late.md", "D1", 40),
        pipeline,
        queue=queue,
        deadline=Deadline.from_millis(context.get_remaining_time_in_millis),
    )
    # THEN it is handed back untouched, to come back at once, and nothing was embedded or recorded
    assert (outcome.status, outcome.retry_after) == ("pending", 0)
    assert embedder.texts == before
    assert pipeline.ledger.get(f"s3://{BUCKET}/late.md") is None
    messages = aws["sqs"].receive_message(QueueUrl=aws["queue_url"]).get("Messages", [])
    assert [json.loads(m["Body"])["Records"][0]["s3"]["object"]["key"] for m in messages] == ["late.md"]


def test_throttled_polling_parks_the_job_instead_of_failing_the_document(
    aws: dict[str, Any], pipeline: Pipeline, textract: tuple[Any, Stubber], clock: Clock
) -> None:
    # GIVEN a scan whose job starts, then Textract throttles every poll
    client, stubber = textract
    made = calls(client)
    scan = scanned_pdf(20)
    aws["s3"].put_object(Bucket=BUCKET, Key="throttled.pdf", Body=scan)
    stubber.add_response("start_document_text_detection", {"JobId": "job-t"})
    for _ in range(6):
        stubber.add_client_error("get_document_text_detection", "ThrottlingException", http_status_code=400)
    queue = WorkQueue(aws["queue_url"], client=aws["sqs"])
    context = FakeLambdaContext(clock, budget_ms=45_000)
    # WHEN its event is applied with 45 s left
    [outcome] = apply_message(
        s3_event("throttled.pdf", "E1", len(scan)),
        pipeline,
        queue=queue,
        deadline=Deadline.from_millis(context.get_remaining_time_in_millis),
    )
    # THEN the backoff stops before the time runs out and the running job is parked, not failed
    assert outcome.status == "pending", outcome
    assert context.get_remaining_time_in_millis() >= 15_000
    assert made.count("GetDocumentTextDetection") >= 1 and made.count("StartDocumentTextDetection") == 1
    record = pipeline.ledger.get(f"s3://{BUCKET}/throttled.pdf")
    assert record is not None and (record.status, record.job_id) == (Status.PENDING, "job-t")
