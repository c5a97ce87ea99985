"""The ledger within a scope, on both ledgers (SQLite, and DynamoDB on moto): every page of every
listing stays inside the scope, and no cursor, crafted from the other ledger's records, leaves it."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from ragstream.access import Scope, list_in_scope
from ragstream.ledger import Ledger
from ragstream.ledger.dynamodb import DynamoDBLedger, table_definition
from ragstream.ledger.sqlite import SQLiteLedger
from ragstream.model import DocumentRecord, Status

A = Scope.of("a", ["s3://docs/a/", "s3://docs/c.pdf"])
SOURCES = [
    *(f"s3://docs/a/{i:02}.md" for i in range(7)),
    "s3://docs/ab.md",  # starts like a/ but is not under it
    "s3://docs/b/secret.md",
    "s3://docs/c.pdf",
    "s3://docs/c.pdf.bak",  # starts like c.pdf but is not it
    "s3://docs/c.pdf/inner.md",  # the folder of that name
    "s3://other/a/x.md",
]
IN_A = {s for s in SOURCES if A.allows(s)}


@pytest.fixture(params=["sqlite", "dynamodb"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ledger]:
    if request.param == "sqlite":
        sqlite_ledger = SQLiteLedger(tmp_path / "ledger.sqlite")
        _fill(sqlite_ledger)
        yield sqlite_ledger
        sqlite_ledger.close()
        return
    request.getfixturevalue("aws_env")
    with mock_aws():
        client = boto3.client("dynamodb", region_name="eu-west-1")
        client.create_table(**table_definition("ledger"))
        dynamo_ledger = DynamoDBLedger("ledger", client=client)
        _fill(dynamo_ledger)
        yield dynamo_ledger
        dynamo_ledger.close()


def _fill(ledger: Ledger) -> None:
    for i, source in enumerate(SOURCES):
        status = Status.FAILED if i % 3 == 0 else Status.INDEXED
        ledger.put(DocumentRecord(source=source, status=status, version="v1"))


def pages(ledger: Ledger, scope: Scope, **kwargs: object) -> list[str]:
    seen: list[str] = []
    cursor = None
    for _ in range(100):
        records, cursor = list_in_scope(ledger, scope, cursor=cursor, **kwargs)  # type: ignore[arg-type]
        seen += [r.source for r in records]
        if cursor is None:
            return seen
    raise AssertionError("the cursor never ended")


def test_listing_stays_in_scope(ledger: Ledger) -> None:
    assert assert_unique(pages(ledger, A, limit=2)) == IN_A
    assert assert_unique(pages(ledger, A, limit=100, prefix="s3://docs/")) == IN_A
    assert assert_unique(pages(ledger, A, limit=1, status=Status.FAILED)) == {
        s for i, s in enumerate(SOURCES) if i % 3 == 0 and s in IN_A
    }
    assert pages(ledger, A, prefix="s3://docs/b/") == []
    assert assert_unique(pages(ledger, Scope.of("ops", None), limit=3)) == set(SOURCES)


def assert_unique(sources: list[str]) -> set[str]:
    assert len(sources) == len(set(sources))
    return set(sources)


def test_no_cursor_leaves_the_scope(ledger: Ledger) -> None:
    # GIVEN every cursor the unrestricted ledger hands out, and SQLite-shaped ones for every source
    raw: list[str] = []
    cursor = None
    while True:
        _, cursor = ledger.list(limit=1, cursor=cursor)
        if cursor is None:
            break
        raw.append(cursor)
    raw += [base64.urlsafe_b64encode(s.encode()).decode().rstrip("=") for s in ["", *SOURCES]]
    # WHEN A passes them back, bare or wrapped in its own cursor shape
    for inner in raw:
        for index in (0, 1):
            wrapped = "s1." + base64.urlsafe_b64encode(json.dumps([index, inner]).encode()).decode()
            for cursor in (inner, wrapped):
                try:
                    records, _ = list_in_scope(ledger, A, cursor=cursor, limit=100)
                except ValueError:
                    continue  # refused
                # THEN whatever comes back is A's
                assert {r.source for r in records} <= IN_A
