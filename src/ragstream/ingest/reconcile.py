"""The reconcile of a bucket of any size, fanned out over the ingest queue.

A run is a chain of small steps, each one SQS message handled by one ingest invocation, so the work
spreads over the function's concurrency (``MaximumConcurrency`` of its event source mapping holds)
and no invocation's work grows with the bucket:

1. ``start_run`` (the schedule) sends the first ``list`` step and returns.
2. A ``list`` step reads one page of the bucket listing (at most ``reconcile_page_size`` objects),
   reads their ledger records in one batch, marks the records seen with the run id, sends a
   ``ragstream.ingest`` message per new or changed object, and sends the next ``list`` step with
   the continuation token, or, after the last page, the first ``sweep`` step.
3. A ``sweep`` step reads one page of the ledger (at most ``sweep_page_size`` records). A record
   neither marked by this run nor written since it began belongs to an object that is gone: its
   points are deleted and it is marked deleted (after HeadObject confirms). The next page follows.

A step that fails is retried by SQS and reaches the dead-letter queue (and its alarm) after the
last try; the run's id is in every step's log line.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from ..blobs import PagedListing
from ..budget import UNBOUNDED, Deadline
from ..errors import ConfigError
from ..model import Outcome, Status
from ..sources import deletion
from .queue import WorkQueue, ingest_item

if TYPE_CHECKING:
    from .pipeline import Pipeline

__all__ = ["RECONCILE_KIND", "Step", "run_step", "start_run"]

log = logging.getLogger(__name__)

RECONCILE_KIND = "ragstream.reconcile"


class Step(BaseModel):
    """One step of a reconcile run, as the body of an ingest-queue message."""

    kind: Literal["ragstream.reconcile"] = "ragstream.reconcile"
    step: Literal["list", "sweep"]
    run: str = Field(description="The run's id: the mark stamped on every record its listing holds.")
    started: datetime = Field(description="When the run began: records written since are never swept.")
    root: str = Field(description="s3://bucket/prefix reconciled.")
    token: str | None = Field(default=None, description="S3 continuation token, or the ledger cursor.")
    page: int = 0


def start_run(root: str, queue: WorkQueue, *, now: datetime | None = None) -> Step:
    """Begin a run over ``root``: send its first listing step; nothing else happens here."""
    if not root.startswith("s3://"):
        raise ConfigError(
            f"the fanned-out reconcile runs on a bucket, not {root!r}: use `ragstream reconcile`"
        )
    started = now or datetime.now(UTC)
    run = f"{started:%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"
    first = Step(step="list", run=run, started=started, root=root)
    queue.send(first.model_dump(mode="json"))
    log.info("reconcile %s of %s started", run, root)
    return first


def run_step(
    body: dict[str, Any],
    pipeline: Pipeline,
    queue: WorkQueue,
    *,
    deadline: Deadline = UNBOUNDED,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Do one step of a run and send the next one; the outcomes of the sweep's deletions."""
    step = Step.model_validate(body)
    if step.step == "list":
        _list_step(step, pipeline, queue)
        return []
    return _sweep_step(step, pipeline, queue, deadline=deadline, on_outcome=on_outcome)


def _list_step(step: Step, pipeline: Pipeline, queue: WorkQueue) -> None:
    listing = pipeline.store
    if not isinstance(listing, PagedListing):
        raise ConfigError("the fanned-out reconcile needs an S3 blob store")
    refs, token = listing.list_page(step.root, token=step.token, limit=pipeline.settings.reconcile_page_size)
    records = pipeline.ledger.get_many([r.source for r in refs])
    changed = [ref for ref in refs if not pipeline.is_current(records.get(ref.source), ref)]
    pipeline.ledger.mark([s for s in (r.source for r in refs) if s in records], step.run)
    queue.send_many([ingest_item(ref) for ref in changed])
    if token is not None:
        following = step.model_copy(update={"token": token, "page": step.page + 1})
    else:
        following = Step(step="sweep", run=step.run, started=step.started, root=step.root)
    queue.send(following.model_dump(mode="json"))
    log.info(
        "reconcile %s: listing page %d, %d objects, %d to index",
        step.run,
        step.page,
        len(refs),
        len(changed),
        extra={"run": step.run, "objects": len(refs), "changed": len(changed), "page": step.page},
    )


def _sweep_step(
    step: Step,
    pipeline: Pipeline,
    queue: WorkQueue,
    *,
    deadline: Deadline,
    on_outcome: Callable[[Outcome], None] | None,
) -> list[Outcome]:
    records, cursor = pipeline.ledger.list(
        prefix=step.root, limit=pipeline.settings.sweep_page_size, cursor=step.token
    )
    unseen = [
        deletion(rec.source, sequencer=rec.sequencer)
        for rec in records
        if rec.status is not Status.DELETED and rec.seen_run != step.run and rec.updated_at < step.started
    ]
    outcomes = pipeline.run(unseen, on_outcome=on_outcome, deadline=deadline) if unseen else []
    if cursor is not None:
        queue.send(step.model_copy(update={"token": cursor, "page": step.page + 1}).model_dump(mode="json"))
    else:
        log.info("reconcile %s of %s done", step.run, step.root, extra={"run": step.run})
    log.info(
        "reconcile %s: sweep page %d, %d records, %d not seen",
        step.run,
        step.page,
        len(records),
        len(unseen),
        extra={"run": step.run, "records": len(records), "unseen": len(unseen), "page": step.page},
    )
    return outcomes
