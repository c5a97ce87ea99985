"""The ingest queue's batch send: entries SQS refuses within a successful SendMessageBatch are sent
again, and a batch still refused after the last try is a ServiceUnavailable (the caller retries)."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from ragstream.errors import ServiceUnavailable
from ragstream.ingest.queue import WorkQueue

URL = "https://sqs.us-east-1.amazonaws.com/123456789012/ragstream-ingest"


def _client() -> Any:
    return boto3.client(
        "sqs", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )


def _refused(*ids: str) -> dict[str, Any]:
    return {
        "Successful": [],
        "Failed": [{"Id": i, "SenderFault": False, "Code": "InternalError"} for i in ids],
    }


def test_refused_entries_are_sent_again_and_only_they() -> None:
    client = _client()
    with Stubber(client) as stub:
        stub.add_response("send_message_batch", _refused("1", "2"), {"QueueUrl": URL, "Entries": ANY})
        second = {
            "QueueUrl": URL,
            "Entries": [{"Id": "1", "MessageBody": '{"n":1}'}, {"Id": "2", "MessageBody": '{"n":2}'}],
        }
        stub.add_response("send_message_batch", {"Successful": [], "Failed": []}, second)
        queue = WorkQueue(URL, client=client)
        queue.send_many([{"n": n} for n in range(3)])
        stub.assert_no_pending_responses()
    assert queue.sent == 3


def test_a_batch_refused_to_the_last_try_is_unavailable() -> None:
    client = _client()
    with Stubber(client) as stub:
        for _ in range(5):
            stub.add_response("send_message_batch", _refused("0"), {"QueueUrl": URL, "Entries": ANY})
        queue = WorkQueue(URL, client=client)
        with pytest.raises(ServiceUnavailable, match="SQS refused 1 messages"):
            queue.send_many([{"n": 0}])
        stub.assert_no_pending_responses()
    assert queue.sent == 0
