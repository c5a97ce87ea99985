"""Lambda events -> SourceRefs, over the sample events in events/ and hand-made edge cases."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, S3Event, SQSEvent

from ragstream.events import (
    change_of_event_name,
    refs_from_eventbridge,
    refs_from_s3_event,
    refs_from_sqs_record,
)
from ragstream.model import Change, SourceRef
from tests.support.events import load_event

BUCKET = "ragstream-docs"
# The events hold it URL-encoded: reports/2024+Q1/c%2B%2B+notes+%28draft%29.pdf
KEY = "reports/2024 Q1/c++ notes (draft).pdf"
SOURCE = f"s3://{BUCKET}/{KEY}"


def _pad(sequencer: str) -> str:
    return sequencer.rjust(32, "0")


def _s3_record(event_name: str, key: str, sequencer: str = "0A1B") -> dict[str, Any]:
    record = copy.deepcopy(load_event("s3-put")["Records"][0])
    record["eventName"] = event_name
    record["s3"]["object"] = {"key": key, "sequencer": sequencer}
    return record


def _sqs_record(body: Any) -> dict[str, Any]:
    record = copy.deepcopy(load_event("sqs-s3-put")["Records"][0])
    record["body"] = body if isinstance(body, str) else json.dumps(body)
    return record


# -- S3 notifications ------------------------------------------------------------------------------


def test_s3_put_gives_an_upsert_with_the_decoded_key() -> None:
    # GIVEN the sample put event, whose key holds a space as "+" and a "+" as "%2B"
    event = load_event("s3-put")
    assert event["Records"][0]["s3"]["object"]["key"] == "reports/2024+Q1/c%2B%2B+notes+%28draft%29.pdf"
    # WHEN it is read
    refs = refs_from_s3_event(event)
    # THEN one upsert of the decoded key, with the event's facts
    assert refs == [
        SourceRef(
            source=SOURCE,
            key=KEY,
            bucket=BUCKET,
            change=Change.UPSERT,
            sequencer="0065F1A2B3C4D5E6F7",
            size=48213,
            etag="9b2cf535f27731c974343645a3985328",
            last_modified=datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
        )
    ]
    assert refs[0].sequencer == _pad("65F1A2B3C4D5E6F7")
    assert refs[0].name == "c++ notes (draft).pdf"


def test_s3_delete_gives_a_delete_without_size_or_etag() -> None:
    [ref] = refs_from_s3_event(load_event("s3-delete"))
    assert (ref.source, ref.change) == (SOURCE, Change.DELETE)
    assert (ref.size, ref.etag) == (None, None)
    assert ref.sequencer == _pad("65F2B3C4D5E6F708")
    assert ref.last_modified == datetime(2024, 5, 2, 8, 30, tzinfo=UTC)


def test_delete_sorts_after_the_put_it_follows() -> None:
    [put] = refs_from_s3_event(load_event("s3-put"))
    [delete] = refs_from_s3_event(load_event("s3-delete"))
    assert put.sequencer is not None and delete.sequencer is not None
    assert delete.sequencer > put.sequencer


def test_a_typed_s3_event_is_accepted_as_well() -> None:
    assert refs_from_s3_event(S3Event(load_event("s3-put")))[0].source == SOURCE


def test_every_record_of_a_multi_record_event_counts_and_others_are_skipped() -> None:
    # GIVEN one event with created, removed, restored and copied objects
    event = load_event("s3-put")
    event["Records"] = [
        _s3_record("ObjectCreated:Put", "a/one.txt", "01"),
        _s3_record("ObjectRemoved:DeleteMarkerCreated", "a/two%3D2.txt", "02"),
        _s3_record("ObjectRestore:Completed", "a/three.txt", "03"),
        _s3_record("ObjectCreated:Copy", "%E2%82%AC+euro.txt", "04"),
        _s3_record("s3:ObjectCreated:CompleteMultipartUpload", "big.bin", "05"),
    ]
    # WHEN it is read
    refs = refs_from_s3_event(event)
    # THEN the restore is skipped and the rest keep their order and changes
    assert [(r.key, r.change) for r in refs] == [
        ("a/one.txt", Change.UPSERT),
        ("a/two=2.txt", Change.DELETE),
        ("€ euro.txt", Change.UPSERT),
        ("big.bin", Change.UPSERT),
    ]


@pytest.mark.parametrize(
    ("name", "change"),
    [
        ("ObjectCreated:Put", Change.UPSERT),
        ("ObjectCreated:Post", Change.UPSERT),
        ("s3:ObjectCreated:*", Change.UPSERT),
        ("ObjectRemoved:Delete", Change.DELETE),
        ("ObjectRemoved:DeleteMarkerCreated", Change.DELETE),
        ("LifecycleExpiration:Delete", None),
        ("ObjectTagging:Put", None),
        ("ReducedRedundancyLostObject", None),
        ("", None),
    ],
)
def test_event_names(name: str, change: Change | None) -> None:
    assert change_of_event_name(name) is change


def test_an_event_of_only_unknown_names_gives_nothing() -> None:
    event = load_event("s3-put")
    event["Records"] = [_s3_record("ObjectAcl:Put", "x")]
    assert refs_from_s3_event(event) == []


# -- SQS ------------------------------------------------------------------------------------------------


def test_sqs_message_with_an_s3_notification() -> None:
    [record] = SQSEvent(load_event("sqs-s3-put")).records
    assert refs_from_sqs_record(record) == refs_from_s3_event(load_event("s3-put"))


def test_sqs_record_as_a_plain_dict() -> None:
    [ref] = refs_from_sqs_record(load_event("sqs-s3-put")["Records"][0])
    assert ref.source == SOURCE


def test_sqs_s3_test_event_is_ignored() -> None:
    [record] = SQSEvent(load_event("sqs-s3-test-event")).records
    assert refs_from_sqs_record(record) == []


def test_sqs_message_with_an_eventbridge_event() -> None:
    [ref] = refs_from_sqs_record(_sqs_record(load_event("eventbridge-object-deleted")))
    assert (ref.source, ref.change) == (SOURCE, Change.DELETE)


def test_sqs_message_with_an_s3_notification_through_sns() -> None:
    envelope = {"Type": "Notification", "MessageId": "m-1", "Message": json.dumps(load_event("s3-delete"))}
    [ref] = refs_from_sqs_record(_sqs_record(envelope))
    assert (ref.source, ref.change) == (SOURCE, Change.DELETE)


def test_sqs_message_with_several_s3_records() -> None:
    event = load_event("s3-put")
    event["Records"] = [_s3_record("ObjectCreated:Put", f"k{i}", f"0{i}") for i in range(3)]
    refs = refs_from_sqs_record(_sqs_record(event))
    assert [r.key for r in refs] == ["k0", "k1", "k2"]


@pytest.mark.parametrize("body", ["not json", "[1, 2]", '{"hello": "world"}', "null"])
def test_sqs_body_that_is_no_event_is_an_error(body: str) -> None:
    with pytest.raises(ValueError, match="SQS message"):
        refs_from_sqs_record(_sqs_record(body))


# -- EventBridge -------------------------------------------------------------------------------------------


def test_eventbridge_object_created() -> None:
    [ref] = refs_from_eventbridge(load_event("eventbridge-object-created"))
    assert ref == SourceRef(
        source=SOURCE,
        key=KEY,
        bucket=BUCKET,
        change=Change.UPSERT,
        sequencer="65F1A2B3C4D5E6F7",
        size=48213,
        etag="9b2cf535f27731c974343645a3985328",
        last_modified=datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
    )


def test_eventbridge_object_deleted() -> None:
    [ref] = refs_from_eventbridge(EventBridgeEvent(load_event("eventbridge-object-deleted")))
    assert (ref.source, ref.change, ref.size, ref.etag) == (SOURCE, Change.DELETE, None, None)
    assert ref.sequencer == _pad("65F2B3C4D5E6F708")


def test_eventbridge_same_object_same_sequencer_as_the_notification() -> None:
    [via_eventbridge] = refs_from_eventbridge(load_event("eventbridge-object-created"))
    [via_notification] = refs_from_s3_event(load_event("s3-put"))
    assert via_eventbridge.sequencer == via_notification.sequencer


@pytest.mark.parametrize(
    "detail_type", ["Object Restore Completed", "Object Tags Added", "Object ACL Updated"]
)
def test_other_eventbridge_s3_events_give_nothing(detail_type: str) -> None:
    event = load_event("eventbridge-object-created")
    event["detail-type"] = detail_type
    assert refs_from_eventbridge(event) == []


def test_eventbridge_event_of_another_service_gives_nothing() -> None:
    event = load_event("eventbridge-object-created")
    event["source"] = "my.app"
    assert refs_from_eventbridge(event) == []
