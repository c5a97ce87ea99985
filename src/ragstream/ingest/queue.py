"""The ingest queue, to send messages to: parked events again with a delay, the steps of a
reconcile run, and the documents it found changed (see :mod:`.dispatch` for how each is applied)."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from ..errors import ConfigError, ServiceUnavailable, Throttled
from ..model import SourceRef

__all__ = ["INGEST_KIND", "MAX_DELAY_SECONDS", "WorkQueue", "ingest_item"]

log = logging.getLogger(__name__)

INGEST_KIND = "ragstream.ingest"
#: SQS's longest message delay.
MAX_DELAY_SECONDS = 900


class WorkQueue:
    """The ingest queue, to send messages to (boto3 SQS client created on first use)."""

    def __init__(self, queue_url: str, client: Any = None) -> None:
        self.queue_url = queue_url
        self._client = client
        self.sent = 0

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            self._client = boto3.client("sqs", config=Config(retries={"mode": "standard", "max_attempts": 5}))
        return self._client

    def send(self, body: dict[str, Any] | str, *, delay: int = 0) -> None:
        """One message, visible after ``delay`` seconds (at most 900)."""
        text = body if isinstance(body, str) else json.dumps(body, separators=(",", ":"))
        self._call(
            "send_message",
            QueueUrl=self.queue_url,
            MessageBody=text,
            DelaySeconds=max(0, min(MAX_DELAY_SECONDS, int(delay))),
        )
        self.sent += 1

    def send_many(self, bodies: Sequence[dict[str, Any]]) -> None:
        """Many messages, ten per SendMessageBatch; entries SQS refuses are sent again, after a
        pause (``retry.py``): botocore retries a failed call, not a batch it answered in part."""
        from ..retry import Backoff, retrying

        for i in range(0, len(bodies), 10):
            entries = [
                {"Id": str(n), "MessageBody": json.dumps(b, separators=(",", ":"))}
                for n, b in enumerate(bodies[i : i + 10])
            ]

            def send() -> None:
                nonlocal entries
                result = self._call("send_message_batch", QueueUrl=self.queue_url, Entries=entries)
                failed = {f["Id"] for f in result.get("Failed", [])}
                self.sent += len(entries) - len(failed)
                entries = [e for e in entries if e["Id"] in failed]
                if entries:
                    raise _Refused(len(entries))

            try:
                retrying(send, attempts=5, retry_on=_Refused, backoff=Backoff(base=0.1, cap=2.0))
            except _Refused as left:
                raise ServiceUnavailable(f"SQS refused {left.count} messages to the ingest queue") from None

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            result: dict[str, Any] = getattr(self.client, operation)(**kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if "Throttl" in code or code == "RequestThrottled":
                raise Throttled(f"SQS throttled ({code})") from exc
            if code in ("AccessDenied", "AccessDeniedException", "AWS.SimpleQueueService.NonExistentQueue"):
                raise ConfigError(
                    f"cannot send to the ingest queue ({code}): check RAGSTREAM_QUEUE_URL"
                ) from exc
            raise ServiceUnavailable(f"SQS {operation} failed ({code})") from exc
        except BotoCoreError as exc:
            raise ServiceUnavailable(f"SQS {operation} failed: {type(exc).__name__}") from exc
        return result


def ingest_item(ref: SourceRef) -> dict[str, Any]:
    """The message that applies ``ref`` as if its event had come (sent by the reconcile)."""
    return {"kind": INGEST_KIND, "ref": ref.model_dump(mode="json", exclude_defaults=True)}


class _Refused(Exception):
    """Entries of a SendMessageBatch that SQS did not take (the call itself succeeded)."""

    def __init__(self, count: int) -> None:
        super().__init__(f"{count} entries refused")
        self.count = count
