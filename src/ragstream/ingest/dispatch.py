"""How one message of the ingest queue (or one directly invoked event) is applied.

Three kinds arrive:

- an S3 or EventBridge event: its documents are applied; one whose document was parked (its OCR
  job outlives the invocation, or no time was left to start it) is sent again with a delay, and its
  own message acknowledged: the batch mates are done and never repeated, and the parked one costs no
  receive count towards the dead-letter queue;
- the steps of a reconcile run (see :mod:`.reconcile`);
- the documents a reconcile found changed (``ragstream.ingest``: a SourceRef to apply as if its
  event had come).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..budget import UNBOUNDED, Deadline
from ..errors import ConfigError, TransientError
from ..events import refs_from_event, refs_of_records
from ..model import Outcome, SourceRef
from ..sources import s3_source
from .queue import INGEST_KIND, WorkQueue
from .reconcile import RECONCILE_KIND, run_step, start_run
from .records import raise_for_retry

if TYPE_CHECKING:
    from .pipeline import Pipeline

__all__ = ["apply_event", "apply_message", "reconcile_bucket"]

log = logging.getLogger(__name__)


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

    try:
        parsed = json.loads(body)
    except json.JSONDecodeError as exc:
        raise ValueError("SQS message has a body that is not JSON") from exc
    kind = parsed.get("kind") if isinstance(parsed, dict) else None
    if kind is not None and str(kind).startswith(RECONCILE_KIND):
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


def reconcile_bucket(
    pipeline: Pipeline,
    bucket: str,
    *,
    queue: WorkQueue | None,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> dict[str, Any]:
    """The scheduled repair of lost events over the whole bucket: fanned out over the queue step by
    step when there is one (the run's id comes back), else in this invocation (its outcomes; a
    document to retry raises TransientError)."""
    root = s3_source(bucket, "")
    if queue is not None:
        return {"reconcile": start_run(root, queue).run}
    outcomes = pipeline.sync(root, repair=True, on_outcome=on_outcome)
    raise_for_retry(outcomes)
    return {"outcomes": [o.model_dump(mode="json") for o in outcomes]}
