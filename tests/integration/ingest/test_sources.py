"""Sources are what they say: the ingest Lambda reads only the configured bucket, never the local disk.

Every event goes through ``functions/ingest/app.py``'s handler, as Lambda calls it, with moto playing
S3 and DynamoDB. An event naming no bucket, another bucket or a ``..`` key indexes nothing, writes no
ledger record, and comes back as a ``rejected`` outcome with its reason (logged, and counted as the
``DocumentsRejected`` metric); the message is acknowledged, since retrying cannot change it.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote_plus

import boto3
import pytest
from moto import mock_aws
from qdrant_client import QdrantClient

from ragstream.blobs import Blobs, LocalFiles, SourcePolicy, Unlisted, file_ref
from ragstream.config import Settings
from ragstream.embeddings import LocalEmbeddings
from ragstream.errors import ConfigError, RejectedSource
from ragstream.index.qdrant import QdrantIndex
from ragstream.ingest import Pipeline
from ragstream.ledger.dynamodb import DynamoDBLedger, table_definition
from ragstream.model import SourceRef

ROOT = Path(__file__).resolve().parents[3]
BUCKET, FOREIGN, TABLE, REGION = "ragstream-docs", "someone-elses-bucket", "ragstream-ledger", "eu-west-1"
SECRET = "The launch code is swordfish and only the owner of this bucket may read it."


@pytest.fixture(scope="module")
def embedder() -> LocalEmbeddings:
    return LocalEmbeddings()


@pytest.fixture
def handler(
    aws_env: None, tmp_path: Path, embedder: LocalEmbeddings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ModuleType]:
    """The ingest handler as Lambda loads it (RAGSTREAM_BUCKET set), on moto, with an in-memory index."""
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        for bucket in (BUCKET, FOREIGN):
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        s3.put_object(Bucket=FOREIGN, Key="secret.txt", Body=SECRET.encode())
        s3.put_object(Bucket=BUCKET, Key="a/../secret.txt", Body=SECRET.encode())
        s3.put_object(Bucket=BUCKET, Key="./secret.txt", Body=SECRET.encode())
        s3.put_object(Bucket=BUCKET, Key="ok.txt", Body=b"Employees receive 25 days of paid annual leave.")
        dynamodb.create_table(**table_definition(TABLE))
        monkeypatch.setenv("RAGSTREAM_HOME", str(tmp_path / "home"))
        monkeypatch.setenv("RAGSTREAM_LEDGER_TABLE", TABLE)
        monkeypatch.setenv("RAGSTREAM_BUCKET", BUCKET)
        spec = importlib.util.spec_from_file_location("ingest_app_sources", ROOT / "functions/ingest/app.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        # the handler's own source policy; only the heavy pieces are swapped for test-sized ones
        module.pipeline = Pipeline.from_settings(
            Settings(home=tmp_path / "home", ledger_table=TABLE, bucket=BUCKET),
            embedder=embedder,
            index=QdrantIndex(QdrantClient(":memory:"), "ragstream"),
            ledger=DynamoDBLedger(TABLE, client=dynamodb),
            store=Blobs(s3),
            sources=module.pipeline.sources,
        )
        yield module
        module.pipeline.index.close()


class Context:
    function_name = "IngestFunction"
    memory_limit_in_mb = 2048
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:IngestFunction"
    aws_request_id = "c6af9ac6-7b61-11e6-9a41-93e812345678"

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


def s3_notification(bucket: str, key: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": REGION,
                "eventTime": "2024-05-01T12:00:00.000Z",
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                    "object": {"key": quote_plus(key), "size": 10, "eTag": "x", "sequencer": "0A1B"},
                },
            }
        ]
    }


def sqs_event(*bodies: dict[str, Any]) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": f"m{i}",
                "receiptHandle": f"rh{i}",
                "body": json.dumps(body),
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:q",
                "awsRegion": REGION,
            }
            for i, body in enumerate(bodies)
        ]
    }


def eventbridge(bucket: str, key: str) -> dict[str, Any]:
    return {
        "version": "0",
        "id": "17793124-05d4-b198-2fde-7ededc63b103",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": "123456789012",
        "time": "2024-05-01T12:00:00Z",
        "region": REGION,
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": {"key": quote_plus(key), "size": 10, "etag": "x", "sequencer": "0A1B"},
            "reason": "PutObject",
        },
    }


ATTACKS = [
    pytest.param("", "etc/passwd", "names no bucket", id="empty-bucket"),
    pytest.param("", "/etc/passwd", "names no bucket", id="empty-bucket-absolute"),
    pytest.param(FOREIGN, "secret.txt", "not the one this deployment reads", id="foreign-bucket"),
    pytest.param(BUCKET, "a/../secret.txt", "'..' segment", id="dotdot-key"),
    pytest.param(BUCKET, "./secret.txt", "'..' segment", id="dot-key"),
    pytest.param("Not_A_Bucket", "x.txt", "not a valid S3 bucket name", id="invalid-bucket"),
]


def assert_nothing_read(handler: ModuleType) -> None:
    """No point in the index, no record in the ledger."""
    assert handler.pipeline.index.count() == 0
    assert handler.pipeline.ledger.list()[0] == []


@pytest.mark.parametrize(("bucket", "key", "reason"), ATTACKS)
def test_sqs_record_for_another_source_is_rejected(
    handler: ModuleType,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    bucket: str,
    key: str,
    reason: str,
) -> None:
    # GIVEN an SQS message whose S3 notification names a source outside the bucket
    # WHEN the handler gets it
    response = handler.lambda_handler(sqs_event(s3_notification(bucket, key)), Context())
    # THEN the message is acknowledged (retrying cannot help), nothing is read, indexed or recorded
    assert response == {"batchItemFailures": []}
    assert_nothing_read(handler)
    assert any(r.levelname == "WARNING" and reason in r.getMessage() for r in caplog.records)
    assert '"DocumentsRejected":[1.0]' in capsys.readouterr().out  # the EMF metric


@pytest.mark.parametrize(("bucket", "key", "reason"), ATTACKS)
def test_eventbridge_event_for_another_source_is_rejected(
    handler: ModuleType, bucket: str, key: str, reason: str
) -> None:
    response = handler.lambda_handler(eventbridge(bucket, key), Context())
    [outcome] = response["outcomes"]
    assert outcome["status"] == "rejected" and reason in outcome["reason"]
    assert outcome["error_kind"] == "RejectedSource"
    assert_nothing_read(handler)


def test_direct_s3_event_with_empty_bucket_never_reads_the_disk(handler: ModuleType) -> None:
    response = handler.lambda_handler(s3_notification("", "etc/passwd"), Context())
    assert [o["status"] for o in response["outcomes"]] == ["rejected"]
    assert_nothing_read(handler)


def test_batch_mates_of_a_rejected_record_are_indexed(handler: ModuleType) -> None:
    event = sqs_event(s3_notification(FOREIGN, "secret.txt"), s3_notification(BUCKET, "ok.txt"))
    assert handler.lambda_handler(event, Context()) == {"batchItemFailures": []}
    assert handler.pipeline.index.count(f"s3://{BUCKET}/ok.txt") == 1
    assert handler.pipeline.index.count(f"s3://{FOREIGN}/secret.txt") == 0


def test_a_malformed_record_of_a_direct_s3_event_fails_only_itself(handler: ModuleType) -> None:
    # GIVEN a direct S3 notification whose first record has no object key, and a good second record
    good = s3_notification(BUCKET, "ok.txt")["Records"][0]
    broken = {**good, "s3": {**good["s3"], "object": {"size": 3}}}
    # WHEN the handler gets it
    response = handler.lambda_handler({"Records": [broken, good]}, Context())
    # THEN the broken record is rejected with its reason, and the good one indexed
    outcomes = response["outcomes"]
    assert [o["status"] for o in outcomes] == ["rejected", "indexed"]
    assert "record 1 is not an S3 event record" in outcomes[0]["reason"]
    assert handler.pipeline.index.count(f"s3://{BUCKET}/ok.txt") == 1


def test_reconcile_reads_only_the_configured_bucket(handler: ModuleType) -> None:
    # GIVEN the bucket holds a good object and two dot-segment keys, and another bucket a secret
    # WHEN the schedule's reconcile runs (a bucket named in the event is not taken from it)
    response = handler.lambda_handler({"action": "reconcile", "bucket": FOREIGN}, Context())
    # THEN the good object is indexed, the dot-segment keys rejected, the other bucket never listed
    statuses = {o["source"]: o["status"] for o in response["outcomes"]}
    assert statuses == {
        f"s3://{BUCKET}/ok.txt": "indexed",
        f"s3://{BUCKET}/a/../secret.txt": "rejected",
        f"s3://{BUCKET}/./secret.txt": "rejected",
    }
    assert [r.source for r in handler.pipeline.ledger.list()[0]] == [f"s3://{BUCKET}/ok.txt"]


def test_the_lambda_needs_its_bucket() -> None:
    with pytest.raises(ConfigError, match="RAGSTREAM_BUCKET"):
        SourcePolicy.bucket_only(None)


# -- the pieces below the handler -------------------------------------------------------------------------


def test_blobs_never_read_an_s3_ref_from_disk(tmp_path: Path) -> None:
    local = tmp_path / "passwd"
    local.write_text("root:x:0:0:root:/root:/bin/bash")
    for ref in (
        SourceRef(source=f"s3://{local}", key=str(local).lstrip("/"), bucket=""),
        SourceRef(source=f"s3://{local}", key=str(local).lstrip("/"), bucket=None),
        SourceRef(source=f"s3:/{local}", key=str(local).lstrip("/"), bucket="x"),
    ):
        with pytest.raises(RejectedSource):
            Blobs().read(ref, max_bytes=1 << 20)


def test_local_refs_stay_inside_the_folder(tmp_path: Path) -> None:
    # GIVEN a folder with a file and a symbolic link to a file outside it
    outside = tmp_path / "outside.txt"
    outside.write_text("not for indexing")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "inside.txt").write_text("fine")
    (docs / "link.txt").symlink_to(outside)
    # WHEN the folder is listed THEN the link is not followed: it is reported, not read
    entries = list(LocalFiles().list(str(docs)))
    assert [r.key for r in entries if isinstance(r, SourceRef)] == ["inside.txt"]
    assert [(u.source, u.folder) for u in entries if isinstance(u, Unlisted)] == [
        ((docs / "link.txt").as_uri(), False)
    ]
    # AND a policy bound to the folder refuses what is outside or goes up with '..'
    policy = SourcePolicy(roots=(docs,))
    policy.check(file_ref(docs / "inside.txt", docs))
    for source in (outside.as_uri(), f"file://{docs}/../outside.txt", "file:relative.txt"):
        with pytest.raises(RejectedSource):
            policy.check(SourceRef(source=source, key="x"))
    with pytest.raises(RejectedSource, match="local files are not read"):
        SourcePolicy.bucket_only(BUCKET).check(file_ref(docs / "inside.txt", docs))
