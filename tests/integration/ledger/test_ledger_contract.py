"""One contract for every ledger: SQLite on disk and DynamoDB through moto."""

from __future__ import annotations

import random
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from ragstream.errors import ConfigError, ServiceUnavailable, Throttled
from ragstream.ledger import Ledger
from ragstream.ledger.dynamodb import DynamoDBLedger, sort_key, table_definition
from ragstream.ledger.sqlite import SQLiteLedger
from ragstream.model import DocumentRecord, Status

REGION = "eu-west-1"
TABLE = "ragstream-ledger"


@pytest.fixture(params=["sqlite", "dynamodb"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ledger]:
    if request.param == "sqlite":
        sqlite_ledger = SQLiteLedger(tmp_path / "state" / "ledger.sqlite")
        yield sqlite_ledger
        sqlite_ledger.close()
        return
    request.getfixturevalue("aws_env")
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        client.create_table(**table_definition(TABLE))
        dynamo_ledger = DynamoDBLedger(TABLE, client=client)
        yield dynamo_ledger
        dynamo_ledger.close()


def seq(n: int) -> str:
    """A sequencer as S3 sends it: hex, unpadded, of varying length."""
    return format(n, "X")


def record(
    source: str = "s3://bucket/a.pdf", sequencer: str | None = "10", **fields: object
) -> DocumentRecord:
    return DocumentRecord(
        source=source, status=fields.pop("status", Status.INDEXED), sequencer=sequencer, **fields
    )


# -- get / put ----------------------------------------------------------------------------------------


def test_get_of_an_unknown_source_is_none(ledger: Ledger) -> None:
    assert ledger.get("s3://bucket/missing") is None


def test_round_trip_of_every_field(ledger: Ledger) -> None:
    # GIVEN a record with every field set, floats included
    full = DocumentRecord(
        source="s3://bucket/docs/report.pdf",
        status=Status.FAILED,
        version="a" * 64,
        sequencer="0065F1A2B3C4D5E6F7",
        fingerprint="fp-1",
        error="Textract: the document is encrypted — ünïcödé",
        error_kind="EncryptedDocument",
        retryable=True,
        content_type="application/pdf",
        engine="textract",
        chunks=17,
        pages=3,
        ocr_pages=2,
        size=48_213,
        timings={"extract": 1.25, "embed": 0.1, "upsert": 12.345678901234567, "total": 3.0},
        updated_at=datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC),
    )
    # WHEN it is written and read back
    assert ledger.put(full) is True
    got = ledger.get(full.source)
    # THEN every field is equal, with its type
    assert got == full
    assert got is not None
    assert isinstance(got.timings["total"], float)
    assert isinstance(got.chunks, int)
    assert got.updated_at.tzinfo is not None


def test_round_trip_of_a_minimal_record(ledger: Ledger) -> None:
    minimal = DocumentRecord(source="s3://bucket/empty.txt", status=Status.PENDING)
    assert ledger.put(minimal) is True
    assert ledger.get(minimal.source) == minimal


def test_newer_sequencer_wins_older_is_refused_equal_is_accepted(ledger: Ledger) -> None:
    assert ledger.put(record(sequencer="20", chunks=1)) is True
    # newer: written
    assert ledger.put(record(sequencer="30", chunks=2)) is True
    # older: refused, stored record unchanged
    assert ledger.put(record(sequencer="25", chunks=3, status=Status.DELETED)) is False
    stored = ledger.get("s3://bucket/a.pdf")
    assert stored is not None
    assert (stored.chunks, stored.status) == (2, Status.INDEXED)
    # equal: the same event may update its own outcome
    assert ledger.put(record(sequencer="30", chunks=4, status=Status.FAILED)) is True
    stored = ledger.get("s3://bucket/a.pdf")
    assert stored is not None
    assert (stored.chunks, stored.status) == (4, Status.FAILED)


def test_sequencers_of_different_length_compare_as_numbers(ledger: Ledger) -> None:
    assert ledger.put(record(sequencer="FF")) is True
    assert ledger.put(record(sequencer="100")) is True  # 0x100 > 0xFF although "1" < "F"
    assert ledger.put(record(sequencer="FFF", chunks=9)) is True
    assert ledger.put(record(sequencer="0FFE")) is False
    stored = ledger.get("s3://bucket/a.pdf")
    assert stored is not None
    assert stored.chunks == 9


def test_none_sequencer_rules(ledger: Ledger) -> None:
    source = "s3://bucket/local.txt"
    # None on an empty ledger: written
    assert ledger.put(record(source, sequencer=None, chunks=1)) is True
    # None over None: written (the current state replaces the current state)
    assert ledger.put(record(source, sequencer=None, chunks=2)) is True
    # a sequencer over None: written
    assert ledger.put(record(source, sequencer="05", chunks=3)) is True
    # None over a sequencer: refused
    assert ledger.put(record(source, sequencer=None, chunks=4)) is False
    stored = ledger.get(source)
    assert stored is not None
    assert (stored.sequencer, stored.chunks) == ("5".rjust(32, "0"), 3)


def test_writes_on_one_source_leave_others_alone(ledger: Ledger) -> None:
    assert ledger.put(record("s3://bucket/a", sequencer="90")) is True
    assert ledger.put(record("s3://bucket/b", sequencer="10")) is True  # lower, but another source
    assert ledger.get("s3://bucket/b") is not None


def test_concurrent_writers_leave_the_newest_record(ledger: Ledger) -> None:
    # GIVEN 20 writers on one source, their sequencers shuffled
    source = "s3://bucket/contended.pdf"
    numbers = list(range(0x1000, 0x1000 + 20 * 7, 7))
    random.Random(7).shuffle(numbers)
    barrier = threading.Barrier(len(numbers))
    results: dict[int, bool] = {}
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            barrier.wait()
            results[n] = ledger.put(record(source, sequencer=seq(n), chunks=n))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in numbers]
    # WHEN they all write at once
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # THEN the record is the newest one, and the newest writer won
    assert not errors
    stored = ledger.get(source)
    assert stored is not None
    assert stored.chunks == max(numbers)
    assert stored.sequencer == seq(max(numbers)).rjust(32, "0")
    assert results[max(numbers)] is True


_WRITER = textwrap.dedent(
    """
    import sys
    from ragstream.ledger.sqlite import SQLiteLedger
    from ragstream.model import DocumentRecord, Status

    path, start, step, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    ledger = SQLiteLedger(path)
    for i in range(count):
        n = start + i * step
        shared = DocumentRecord(
            source="s3://bucket/shared", status=Status.INDEXED, sequencer=format(n, "X"), chunks=n
        )
        ledger.put(shared)
        ledger.put(DocumentRecord(source=f"s3://bucket/p{start}/{i}", status=Status.INDEXED))
    ledger.close()
    """
)


def test_sqlite_two_processes_share_one_file(tmp_path: Path) -> None:
    # GIVEN two processes writing interleaved sequencers to one file that neither has created
    path = tmp_path / "fresh" / "ledger.sqlite"
    count = 150
    procs = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(path), str(start), "2", str(count)])
        for start in (0x100, 0x101)
    ]
    # WHEN both are done
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    # THEN every write landed, and the shared source holds the highest sequencer
    ledger = SQLiteLedger(path)
    try:
        stored = ledger.get("s3://bucket/shared")
        assert stored is not None
        assert stored.chunks == 0x101 + 2 * (count - 1)
        records, cursor = ledger.list(prefix="s3://bucket/p", limit=1000)
        assert len(records) == 2 * count
        assert cursor is None
    finally:
        ledger.close()


# -- list -----------------------------------------------------------------------------------------------

STATUSES = [Status.INDEXED, Status.FAILED, Status.DELETED, Status.PENDING]


def _fill(ledger: Ledger, n: int = 250) -> list[DocumentRecord]:
    records = []
    for i in range(n):
        folder = "alpha" if i % 3 else "beta"
        r = record(
            f"s3://bucket/{folder}/doc-{i:04d}.pdf", sequencer=seq(i + 1), status=STATUSES[i % 4], chunks=i
        )
        assert ledger.put(r) is True
        records.append(r)
    return records


def _all_pages(ledger: Ledger, limit: int, **filters: object) -> list[list[DocumentRecord]]:
    pages: list[list[DocumentRecord]] = []
    cursor: str | None = None
    while True:
        page, cursor = ledger.list(limit=limit, cursor=cursor, **filters)  # type: ignore[arg-type]
        assert len(page) <= limit
        pages.append(page)
        if cursor is None:
            return pages
        assert isinstance(cursor, str)
        assert len(pages) < 1000, "the cursor does not advance"


@pytest.mark.parametrize(
    ("status", "prefix"),
    [
        (None, None),
        (Status.FAILED, None),
        (None, "s3://bucket/beta/"),
        (Status.INDEXED, "s3://bucket/alpha/"),
        (Status.DELETED, "s3://bucket/alpha/doc-01"),
        (Status.PENDING, "s3://elsewhere/"),
    ],
)
def test_list_filters_and_paginates(ledger: Ledger, status: Status | None, prefix: str | None) -> None:
    # GIVEN 250 records in two folders and four statuses
    records = _fill(ledger)
    expected = sorted(
        (r for r in records if (status is None or r.status == status) and r.source.startswith(prefix or "")),
        key=lambda r: r.source,
    )
    # WHEN every page is fetched
    pages = _all_pages(ledger, limit=40, status=status, prefix=prefix)
    got = [r for page in pages for r in page]
    # THEN every matching record comes exactly once, in source order where the ledger promises it
    assert sorted(r.source for r in got) == [r.source for r in expected]
    assert {r.source: r for r in got} == {r.source: r for r in expected}
    if status is not None or isinstance(ledger, SQLiteLedger):
        assert [r.source for r in got] == [r.source for r in expected]
    if isinstance(ledger, SQLiteLedger) or status is not None:
        full_pages = len(expected) // 40
        assert [len(p) for p in pages[:full_pages]] == [40] * full_pages


def test_list_of_an_empty_ledger(ledger: Ledger) -> None:
    assert ledger.list() == ([], None)


def test_list_with_limit_equal_to_the_count_ends(ledger: Ledger) -> None:
    for i in range(5):
        ledger.put(record(f"s3://bucket/x{i}", status=Status.FAILED))
    pages = _all_pages(ledger, limit=5, status=Status.FAILED)
    assert sum(len(p) for p in pages) == 5
    assert pages[-1] == [] or len(pages) == 1


def test_list_rejects_a_forged_cursor(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="cursor"):
        ledger.list(cursor="!!not a cursor!!")


# -- odd sources ------------------------------------------------------------------------------------------

ODD_KEYS = [
    "reports/2024 Q1/c++ notes (draft).pdf",
    "a+b=c & d?e#f%20g.txt",
    "ünïcødé/日本語のファイル/📄 résumé.docx",
    "trailing space /  double  space.md",
    "é" * 512,  # 1024 bytes of UTF-8: the longest key S3 allows
    "z" * 1024,
]


@pytest.mark.parametrize("key", ODD_KEYS, ids=range(len(ODD_KEYS)))
def test_odd_sources_round_trip_and_match_their_prefix(ledger: Ledger, key: str) -> None:
    source = f"s3://bucket/{key}"
    r = record(source, sequencer="AB")
    assert ledger.put(r) is True
    assert ledger.get(source) == r
    assert ledger.put(record(source, sequencer="AA")) is False
    prefix = source[: len(source) // 2]
    assert [x.source for x in ledger.list(prefix=prefix)[0]] == [source]
    assert [x.source for x in ledger.list(prefix=prefix, status=Status.INDEXED)[0]] == [source]
    assert ledger.list(prefix=source + "\x00")[0] == []


def test_prefix_bound_does_not_leak_into_the_next_character(ledger: Ledger) -> None:
    for key in ["a/", "a/x", "a0", "a/\U0010ffff", "a/\ud7ff", "a/\ue000", "b"]:
        ledger.put(record(f"s3://bucket/{key}", sequencer=None))
    expected = ["s3://bucket/" + k for k in ["a/", "a/x", "a/\ud7ff", "a/\ue000", "a/\U0010ffff"]]
    assert sorted(r.source for r in ledger.list(prefix="s3://bucket/a/")[0]) == expected
    got = [r.source for r in ledger.list(prefix="s3://bucket/a/\ud7ff")[0]]
    assert got == ["s3://bucket/a/\ud7ff"]


# -- implementation specifics ------------------------------------------------------------------------------


def test_sqlite_creates_its_folder(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "ledger.sqlite"
    ledger = SQLiteLedger(path)
    ledger.close()
    assert path.exists()


def test_dynamodb_costs_no_client_until_used() -> None:
    ledger = DynamoDBLedger(TABLE)
    assert ledger._client is None
    ledger.close()


@pytest.mark.parametrize(
    ("code", "http_status", "expected"),
    [
        ("ProvisionedThroughputExceededException", 400, Throttled),
        ("ThrottlingException", 400, Throttled),
        ("InternalServerError", 500, ServiceUnavailable),
        ("ServiceUnavailable", 503, ServiceUnavailable),
        ("ResourceNotFoundException", 400, ConfigError),
    ],
)
def test_dynamodb_translates_service_errors(
    aws_env: None, code: str, http_status: int, expected: type[Exception]
) -> None:
    # GIVEN a client that answers with an error (botocore's retries are over by then)
    client = boto3.client("dynamodb", region_name=REGION)
    ledger = DynamoDBLedger(TABLE, client=client)
    with Stubber(client) as stub:
        stub.add_client_error("put_item", service_error_code=code, http_status_code=http_status)
        stub.add_client_error("get_item", service_error_code=code, http_status_code=http_status)
        # WHEN the ledger is used THEN the error is ours, retryable as its kind says
        with pytest.raises(expected) as put_error:
            ledger.put(record())
        with pytest.raises(expected):
            ledger.get("s3://bucket/a.pdf")
    assert put_error.value.retryable is (expected is not ConfigError)  # type: ignore[attr-defined]


def test_dynamodb_refused_put_is_false_not_an_error(aws_env: None) -> None:
    client = boto3.client("dynamodb", region_name=REGION)
    ledger = DynamoDBLedger(TABLE, client=client)
    with Stubber(client) as stub:
        stub.add_client_error("put_item", service_error_code="ConditionalCheckFailedException")
        assert ledger.put(record()) is False


def test_dynamodb_table_definition_is_valid_for_create_table(aws_env: None) -> None:
    definition = table_definition("t")
    assert definition["BillingMode"] == "PAY_PER_REQUEST"
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        client.create_table(**definition)
        described = client.describe_table(TableName="t")["Table"]
    assert described["KeySchema"] == [{"AttributeName": "source", "KeyType": "HASH"}]
    assert [i["IndexName"] for i in described["GlobalSecondaryIndexes"]] == ["status-index"]


def test_sources_longer_than_a_dynamodb_sort_key_stay_apart(ledger: Ledger) -> None:
    # GIVEN two sources that agree on their first 1,100 bytes (a GSI sort key holds 1,024)
    stem = "s3://bucket/" + "ü" * 544
    a, b = stem + "/a.txt", stem + "/b.txt"
    for source in (b, a):
        assert ledger.put(record(source, status=Status.FAILED)) is True
    # WHEN listed by status with a prefix longer than 1,024 bytes
    # THEN the prefix still tells them apart, and the order is the source order
    assert [r.source for r in ledger.list(status=Status.FAILED, prefix=stem + "/b")[0]] == [b]
    assert [r.source for r in ledger.list(status=Status.FAILED, prefix=stem)[0]] == [a, b]
    assert [r.source for r in ledger.list(prefix=stem + "/a")[0]] == [a]


def test_dynamodb_sort_key_is_cut_on_a_character_boundary() -> None:
    cut = sort_key("x" + "é" * 600)
    assert len(cut.encode()) == 1023
    assert sort_key("short") == "short"


# -- pending OCR jobs, batch reads and the reconcile's mark --------------------------------------------------


def test_a_pending_record_keeps_its_job_id_and_is_listed_by_status(ledger: Ledger) -> None:
    # GIVEN a version whose OCR job outlives an invocation, parked with its job id
    parked = record("s3://bucket/scan.pdf", seq(5), status=Status.PENDING, version="v" * 64, job_id="job-1")
    assert ledger.put(parked)
    ledger.put(record("s3://bucket/other.pdf", seq(1)))
    # THEN the job id comes back, and the pending records can be listed
    got = ledger.get("s3://bucket/scan.pdf")
    assert got is not None and (got.status, got.job_id, got.version) == (Status.PENDING, "job-1", "v" * 64)
    pending, _ = ledger.list(status=Status.PENDING)
    assert [r.source for r in pending] == ["s3://bucket/scan.pdf"]
    # AND the same event, resumed and done, replaces it (equal sequencer accepted)
    assert ledger.put(record("s3://bucket/scan.pdf", seq(5), version="v" * 64))
    done = ledger.get("s3://bucket/scan.pdf")
    assert done is not None and done.status is Status.INDEXED and done.job_id is None


def test_get_many_reads_a_page_of_sources_at_once(ledger: Ledger) -> None:
    sources = [f"s3://bucket/k{i:04d}" for i in range(250)]
    for s in sources[::2]:
        ledger.put(record(s, seq(1), etag=f"e-{s[-4:]}"))
    found = ledger.get_many([*sources, sources[0], "s3://bucket/none"])
    assert set(found) == set(sources[::2])
    assert found[sources[2]].etag == "e-0002"
    assert ledger.get_many([]) == {}


def test_mark_stamps_only_existing_records_and_changes_nothing_else(ledger: Ledger) -> None:
    # GIVEN records with sequencers
    for i in range(5):
        ledger.put(record(f"s3://bucket/m{i}", seq(10 + i), etag=f"e{i}"))
    before = ledger.get("s3://bucket/m1")
    # WHEN a run marks some of them, and one unknown source
    stamped = ledger.mark(["s3://bucket/m1", "s3://bucket/m3", "s3://bucket/unknown"], "run-1")
    # THEN only those existing records carry the run; nothing else changed, no record was created
    assert stamped == 2
    assert ledger.get("s3://bucket/unknown") is None
    after = ledger.get("s3://bucket/m1")
    assert after is not None and before is not None
    assert after.seen_run == "run-1"
    assert after.model_copy(update={"seen_run": None}) == before
    assert ledger.get("s3://bucket/m2").seen_run is None  # type: ignore[union-attr]
    # AND the sequencer rule still holds after a mark
    assert not ledger.put(record("s3://bucket/m1", seq(1)))


def _batch_get(table: str, found: list[DocumentRecord], left: list[str]) -> dict[str, Any]:
    """A BatchGetItem answer: the items of ``found``, and ``left`` keys unprocessed."""
    from ragstream.ledger.dynamodb import _to_item

    answer: dict[str, Any] = {"Responses": {table: [_to_item(r) for r in found]}}
    if left:
        answer["UnprocessedKeys"] = {table: {"Keys": [{"source": {"S": s}} for s in left]}}
    return answer


def test_dynamodb_get_many_asks_again_for_unprocessed_keys_then_gives_up(aws_env: None) -> None:
    # GIVEN DynamoDB answering BatchGetItem with one of two keys unprocessed, then with it
    client = boto3.client("dynamodb", region_name=REGION)
    ledger = DynamoDBLedger(TABLE, client=client)
    a, b = record("s3://bucket/a.pdf", seq(1)), record("s3://bucket/b.pdf", seq(2))
    with Stubber(client) as stub:
        stub.add_response("batch_get_item", _batch_get(TABLE, [a], [b.source]))
        stub.add_response("batch_get_item", _batch_get(TABLE, [b], []))
        # WHEN the ledger reads both THEN both come back, the second from the second answer
        found = ledger.get_many([a.source, b.source])
        stub.assert_no_pending_responses()
    assert set(found) == {a.source, b.source}
    # AND a key DynamoDB never processes, asked 8 times, is a Throttled error
    with Stubber(client) as stub:
        for _ in range(8):
            stub.add_response("batch_get_item", _batch_get(TABLE, [], [b.source]))
        with pytest.raises(Throttled, match="left 1 keys"):
            ledger.get_many([b.source])
        stub.assert_no_pending_responses()
