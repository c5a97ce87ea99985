"""Ingest Lambda: S3 notifications (through SQS, or direct, or EventBridge) -> the ingest pipeline.

Permanent document failures are recorded in the ledger and acknowledged; transient ones are reported
as SQS batch item failures, so only those messages are retried (and reach the DLQ after the last try).
Only objects of the configured bucket (RAGSTREAM_BUCKET) are read, never a local file: an event naming
another bucket, no bucket or a ``..`` key is rejected (logged, counted as DocumentsRejected, acknowledged).
Every step is given the invocation's remaining time; a document parked for later is sent back to the
queue with a delay (``ragstream.ingest.dispatch``). The schedule starts a reconcile run fanned out
over the queue.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from ragstream.blobs import SourcePolicy
from ragstream.budget import Deadline
from ragstream.config import get_settings
from ragstream.events import is_reconcile_event, is_sqs_event
from ragstream.ingest import Outcome, Pipeline, raise_for_retry
from ragstream.ingest.dispatch import apply_event, apply_message, reconcile_bucket
from ragstream.ingest.queue import WorkQueue
from ragstream.tracing import build_tracer, flush_after

logger = Logger(service="ragstream-ingest")
copy_config_to_registered_loggers(source_logger=logger, include={"ragstream"})  # JSON: names escaped
metrics = Metrics(namespace="ragstream", service="ingest")  # CloudWatch EMF: written to the log, no API call
settings = get_settings().resolve_secrets()
tracer = build_tracer(settings)
pipeline = Pipeline.from_settings(settings, tracer=tracer, sources=SourcePolicy.bucket_only(settings.bucket))
processor = BatchProcessor(event_type=EventType.SQS)
queue = WorkQueue(settings.queue_url) if settings.queue_url else None


def _log(outcome: Outcome) -> None:
    logger.info("document %s", outcome.status, extra=outcome.model_dump(mode="json"))
    metrics.add_metric(name=f"Documents{outcome.status.title()}", unit=MetricUnit.Count, value=1)
    if outcome.status == "indexed":
        metrics.add_metric(name="Chunks", unit=MetricUnit.Count, value=outcome.chunks)
        metrics.add_metric(name="OcrPages", unit=MetricUnit.Count, value=outcome.ocr_pages)


def record_handler(record: SQSRecord, lambda_context: LambdaContext) -> None:
    """One SQS message: its S3 events applied in order, or a reconcile step, within the time left."""
    deadline = Deadline.from_millis(lambda_context.get_remaining_time_in_millis)
    raise_for_retry(apply_message(record.body, pipeline, queue=queue, deadline=deadline, on_outcome=_log))


@logger.inject_lambda_context
@metrics.log_metrics
@flush_after(tracer)  # traces leave before the container freezes; bounded by RAGSTREAM_LANGFUSE_FLUSH_TIMEOUT
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if is_sqs_event(event):
        return process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
    if is_reconcile_event(event):  # the scheduled repair of lost events
        return reconcile_bucket(pipeline, settings.bucket or "", queue=queue, on_outcome=_log)
    # direct S3 notification or EventBridge: a malformed record is rejected on its own
    deadline = Deadline.from_millis(context.get_remaining_time_in_millis)
    outcomes = apply_event(event, pipeline, deadline=deadline, on_outcome=_log)
    raise_for_retry(outcomes)
    return {"outcomes": [o.model_dump(mode="json") for o in outcomes]}
