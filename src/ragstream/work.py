"""Messages of the ingest queue besides S3 events, and how one message is applied.

Two kinds come back through the queue:

- an event whose document was parked (its OCR job outlives the invocation, or no time was left to
  start it) is sent again with a delay, and its own message acknowledged: the batch mates are done
  and never repeated, and the parked one costs no receive count towards the dead-letter queue;
- the steps of a reconcile run (see :mod:`ragstream.reconcile`), and the documents it found
  changed (``ragstream.ingest``: a SourceRef to apply as if its event had come).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .budget import UNBOUNDED, Deadline
from .errors import ConfigError, ServiceUnavailable, Throttled, TransientError
from .model import SourceRef

if TYPE_CHECKING:
    from .ingest import Outcome, Pipeline

__all__ = ["INGEST_KIND", "MAX_DELAY_SECONDS", "WorkQueue", "apply_event", "apply_message", "ingest_item"]

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
        """Many messages, ten per SendMessageBatch; entries SQS refuses are sent again."""
        for i in range(0, len(bodies), 10):
            entries = [
                {"Id": str(n), "MessageBody": json.dumps(b, separators=(",", ":"))}
                for n, b in enumerate(bodies[i : i + 10])
            ]
            for _ in range(5):
                result = self._call("send_message_batch", QueueUrl=self.queue_url, Entries=entries)
                failed = {f["Id"] for f in result.get("Failed", [])}
                self.sent += len(entries) - len(failed)
                entries = [e for e in entries if e["Id"] in failed]
                if not entries:
                    break
            if entries:
                raise ServiceUnavailable(f"SQS refused {len(entries)} messages to the ingest queue")

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


def apply_message(
    body: str,
    pipeline: Pipeline,
    *,
    queue: WorkQueue | None,
    deadline: Deadline = UNBOUNDED,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Apply one message of the ingest queue: an S3 or EventBridge event, a reconcile step, or a
    document the reconcile found changed. Parked documents are sent again with a delay; with no
    queue to send to, a TransientError hands the message back to SQS instead.
    """
    from .events import refs_from_event

    try:
        parsed = json.loads(body)
    except json.JSONDecodeError as exc:
        raise ValueError("SQS message has a body that is not JSON") from exc
    kind = parsed.get("kind") if isinstance(parsed, dict) else None
    if kind is not None and str(kind).startswith("ragstream.reconcile"):
        from .reconcile import run_step

        if queue is None:
            raise ConfigError("a reconcile step needs the ingest queue: set RAGSTREAM_QUEUE_URL")
        return run_step(parsed, pipeline, queue, deadline=deadline, on_outcome=on_outcome)
    refs = [SourceRef.model_validate(parsed["ref"])] if kind == INGEST_KIND else refs_from_event(parsed)
    outcomes = pipeline.run(refs, on_outcome=on_outcome, deadline=deadline)
    later = [o for o in outcomes if o.status == "pending"]
    if later:
        delay = max(o.retry_after or 0 for o in later)
        if queue is None:
            raise TransientError(f"{len(later)} document(s) parked; the message comes back after its timeout")
        queue.send(body, delay=delay)
        log.info("parked %d document(s); the event comes back in %d s", len(later), delay)
    return outcomes


def apply_event(
    event: dict[str, Any],
    pipeline: Pipeline,
    *,
    deadline: Deadline = UNBOUNDED,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Apply an S3 notification or EventBridge event invoked directly (asynchronously, no queue):
    a document parked for later raises TransientError, so that Lambda invokes the event again."""
    from .events import refs_of_records
    from .ingest import Outcome

    refs, problems = refs_of_records(event)  # one malformed record is rejected alone
    outcomes = [Outcome(source="(malformed record)", status="rejected", reason=p) for p in problems]
    for outcome in outcomes:
        if on_outcome:
            on_outcome(outcome)
    outcomes += pipeline.run(refs, on_outcome=on_outcome, deadline=deadline)
    later = [o for o in outcomes if o.status == "pending"]
    if later:
        raise TransientError(f"{len(later)} document(s) parked; the invocation is retried")
    return outcomes
