"""S3, SQS and EventBridge events -> SourceRefs, read through Powertools' typed event views.

Keys arrive URL-encoded (``+`` is a space, ``%xx`` a byte) and are decoded here. Events that do
not change an object's content (``s3:TestEvent``, restores, tagging, ACLs...) give no SourceRef:
the caller may log that a record was skipped. A body that is not an event at all raises
``ValueError`` so that the message ends in the dead-letter queue, where it can be inspected.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, S3Event, SQSRecord
from aws_lambda_powertools.utilities.data_classes.s3_event import (
    S3EventBridgeNotificationEvent,
    S3EventRecord,
)

from .model import Change, SourceRef
from .sources import s3_source

__all__ = [
    "change_of_detail_type",
    "change_of_event_name",
    "is_reconcile_event",
    "is_sqs_event",
    "refs_from_event",
    "refs_from_eventbridge",
    "refs_from_s3_event",
    "refs_from_sqs_record",
]

S3_TEST_EVENT = "s3:TestEvent"

_EVENTBRIDGE_CHANGES = {"Object Created": Change.UPSERT, "Object Deleted": Change.DELETE}


def change_of_event_name(event_name: str) -> Change | None:
    """UPSERT for ``ObjectCreated:*``, DELETE for ``ObjectRemoved:*``, None for anything else."""
    name = event_name.removeprefix("s3:")
    if name.startswith("ObjectCreated:"):
        return Change.UPSERT
    if name.startswith("ObjectRemoved:"):
        return Change.DELETE
    return None


def change_of_detail_type(detail_type: str) -> Change | None:
    """UPSERT for EventBridge "Object Created", DELETE for "Object Deleted", None for anything else."""
    return _EVENTBRIDGE_CHANGES.get(detail_type)


def _s3_ref(bucket: str, key: str, change: Change, obj: Any, event_time: Any) -> SourceRef:
    """The SourceRef of an object as an event describes it (``obj``: the event's object view)."""
    size = obj.get("size")
    return SourceRef(
        source=s3_source(bucket, key),
        key=key,
        bucket=bucket,
        change=change,
        sequencer=obj.get("sequencer"),
        size=int(size) if size is not None else None,
        etag=obj.etag or None,
        last_modified=event_time,
    )


def _ref_of_s3_record(record: S3EventRecord) -> SourceRef | None:
    change = change_of_event_name(record.event_name)
    if change is None:
        return None
    obj = record.s3.get_object
    return _s3_ref(record.s3.bucket.name, unquote_plus(obj.key), change, obj, record.get("eventTime"))


def refs_from_s3_event(event: dict[str, Any] | S3Event) -> list[SourceRef]:
    """One SourceRef per object created or removed in an S3 notification; other records skipped."""
    s3_event = event if isinstance(event, S3Event) else S3Event(event)
    refs = (_ref_of_s3_record(record) for record in s3_event.records)
    return [ref for ref in refs if ref is not None]


def refs_of_records(event: dict[str, Any]) -> tuple[list[SourceRef], list[str]]:
    """A direct S3 notification (or EventBridge event) read record by record: the SourceRefs of the
    good records, and why each malformed one was left out, so that one bad record fails only itself."""
    records = event.get("Records") if isinstance(event, dict) else None
    parts = [{**event, "Records": [r]} for r in records] if isinstance(records, list) else [event]
    refs: list[SourceRef] = []
    problems: list[str] = []
    for number, part in enumerate(parts, start=1):
        try:
            refs += refs_from_event(part)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            problems.append(f"record {number} is not an S3 event record ({type(exc).__name__}: {exc})"[:300])
    return refs, problems


def refs_from_eventbridge(event: dict[str, Any] | EventBridgeEvent) -> list[SourceRef]:
    """The SourceRef of an S3 "Object Created" / "Object Deleted" EventBridge event; else empty."""
    raw = event.raw_event if isinstance(event, EventBridgeEvent) else event
    notification = S3EventBridgeNotificationEvent(raw)
    change = change_of_detail_type(notification.detail_type)
    if notification.source != "aws.s3" or change is None:
        return []
    obj = notification.detail.object  # Powertools decodes this key (unquote_plus)
    return [_s3_ref(notification.detail.bucket.name, obj.key, change, obj, notification.get("time"))]


def is_sqs_event(event: dict[str, Any]) -> bool:
    """Whether a Lambda event is a batch of SQS messages."""
    records = event.get("Records") if isinstance(event, dict) else None
    return bool(records) and all(r.get("eventSource") == "aws:sqs" for r in records)  # type: ignore[union-attr]


def is_reconcile_event(event: dict[str, Any]) -> bool:
    """Whether a Lambda event asks for a reconcile: ``{"action": "reconcile"}`` (the schedule's input)."""
    return isinstance(event, dict) and event.get("action") == "reconcile"


def refs_from_event(body: Any) -> list[SourceRef]:
    """The SourceRefs of an S3 notification, an EventBridge S3 event, or an S3 -> SNS envelope.

    Raises ``ValueError`` for anything else.
    """
    if not isinstance(body, dict):
        raise ValueError(f"SQS message body is not an event object: {type(body).__name__}")
    if "Records" in body:
        return refs_from_s3_event(body)
    if body.get("Event") == S3_TEST_EVENT:
        return []
    if "detail-type" in body and "detail" in body:
        return refs_from_eventbridge(body)
    if body.get("Type") == "Notification" and isinstance(body.get("Message"), str):  # S3 -> SNS -> SQS
        return refs_from_event(json.loads(body["Message"]))
    raise ValueError(
        f"SQS message body is neither an S3 notification nor an EventBridge event (keys: {sorted(body)[:8]})"
    )


def refs_from_sqs_record(record: dict[str, Any] | SQSRecord) -> list[SourceRef]:
    """The SourceRefs in one SQS message: an S3 notification, an EventBridge event or ``s3:TestEvent``.

    Raises ``ValueError`` when the body is not JSON or not one of those shapes.
    """
    sqs_record = record if isinstance(record, SQSRecord) else SQSRecord(record)
    try:
        body = sqs_record.json_body
    except json.JSONDecodeError as exc:
        raise ValueError(f"SQS message {sqs_record.message_id} has a body that is not JSON") from exc
    return refs_from_event(body)
