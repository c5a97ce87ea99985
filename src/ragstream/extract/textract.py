"""Amazon Textract: DetectDocumentText for one page, Start/GetDocumentTextDetection for many.

Throttling, 5xx and timeouts are retried with exponential backoff and become Throttled /
ServiceUnavailable when they persist; a document Textract rejects becomes a permanent error.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from ..budget import UNBOUNDED, Deadline
from ..errors import (
    ConfigError,
    CorruptDocument,
    Parked,
    ServiceUnavailable,
    Throttled,
    TooLarge,
    UnsupportedFormat,
)
from ..model import Element
from ..retry import Backoff, retrying
from .ocr import Line, lines_to_elements, order_lines

__all__ = [
    "ASYNC_MAX_BYTES",
    "ASYNC_MAX_PAGES",
    "SYNC_MAX_BYTES",
    "TextractOcr",
    "blocks_to_elements",
    "job_token",
    "make_client",
]

SYNC_MAX_BYTES = 10 * 1024 * 1024
ASYNC_MAX_BYTES = 500 * 1024 * 1024
ASYNC_MAX_PAGES = 3000
_THROTTLE_CODES = {
    "ThrottlingException",
    "ProvisionedThroughputExceededException",
    "LimitExceededException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
}
_SERVER_CODES = {"InternalServerError", "ServiceUnavailable", "ServiceUnavailableException"}
_CONFIG_CODES = {
    "AccessDeniedException",
    "InvalidS3ObjectException",
    "InvalidKMSKeyException",
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "ExpiredTokenException",
}

#: Seconds one Textract call may take; a poll is not started with less time left than that.
_CALL_SECONDS = 5.0

_sleep: Callable[[float], None] = time.sleep  # tests replace it


def make_client() -> Any:
    """A boto3 Textract client whose own retries are few: ours do the backoff."""
    import boto3
    from botocore.config import Config

    config = Config(retries={"mode": "standard", "max_attempts": 2}, connect_timeout=10, read_timeout=120)
    try:
        return boto3.client("textract", config=config)
    except Exception as exc:  # NoRegionError and friends
        raise ConfigError(f"cannot create a Textract client ({type(exc).__name__}): set AWS_REGION") from None


class TextractOcr:
    """Textract text detection with backoff, pagination and limits, translated to our errors."""

    def __init__(
        self,
        client: Any,
        *,
        max_attempts: int = 6,
        base_delay: float = 1.0,
        max_delay: float = 20.0,
        job_timeout: float = 600.0,
    ) -> None:
        self.client = client
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.job_timeout = job_timeout
        self.calls: list[str] = []  # operation names, in order: what was billed

    # -- synchronous: one page ----------------------------------------------------------------------

    def detect_bytes(self, data: bytes, page: int = 1, *, what: str = "image") -> list[Element]:
        """DetectDocumentText on an image or single-page PDF of at most 10 MB."""
        if len(data) > SYNC_MAX_BYTES:
            raise TooLarge(
                f"{what} is {len(data) / 1048576:.1f} MB; Textract reads at most 10 MB per page "
                "synchronously: reduce its resolution"
            )
        response = self._call("detect_document_text", Document={"Bytes": data})
        return blocks_to_elements(response.get("Blocks", []), default_page=page, page_offset=page - 1)

    # -- asynchronous: a multi-page document in S3 --------------------------------------------------

    def detect_s3(
        self,
        bucket: str,
        key: str,
        *,
        size: int,
        pages: int,
        token: str,
        job_id: str | None = None,
        deadline: Deadline = UNBOUNDED,
    ) -> list[Element]:
        """StartDocumentTextDetection on s3://bucket/key (or resume ``job_id``), poll with backoff,
        follow NextToken.

        With a bounded ``deadline`` the wait stops before the time runs out: :class:`Parked` carries
        the job id, so a later invocation resumes the job instead of starting (and paying for) it
        again. Unbounded (the CLI), it waits up to ``job_timeout``.
        """
        if size > ASYNC_MAX_BYTES:
            raise TooLarge(f"document is {size / 1048576:.0f} MB; Textract reads at most 500 MB")
        if pages > ASYNC_MAX_PAGES:
            raise TooLarge(f"document has {pages} pages; Textract reads at most {ASYNC_MAX_PAGES}")
        if job_id is None:
            job_id = self.start(bucket, key, token)
        retry_after = min(900, 30 + pages // 4)  # Textract reads a few pages a second
        give_up = time.monotonic() + self.job_timeout
        delay = self.base_delay
        while True:
            if not deadline.allows(_CALL_SECONDS):
                raise Parked(f"Textract job {job_id} is running", job_id=job_id, retry_after=retry_after)
            response = self._poll(job_id, deadline, retry_after, MaxResults=1000)
            status = response.get("JobStatus")
            if status in {"SUCCEEDED", "PARTIAL_SUCCESS"}:
                break
            if status == "FAILED":
                reason = response.get("StatusMessage") or "no reason given"
                raise CorruptDocument(f"Textract could not read the document: {reason}")
            if not deadline.allows(delay + _CALL_SECONDS):
                raise Parked(f"Textract job {job_id} still {status}", job_id=job_id, retry_after=retry_after)
            if not deadline.bounded and time.monotonic() > give_up:
                raise ServiceUnavailable(
                    f"Textract job {job_id} still {status} after {self.job_timeout:.0f} s; it will be retried"
                )
            _sleep(delay)
            delay = min(delay * 2, self.max_delay)
        blocks = list(response.get("Blocks", []))
        next_token = response.get("NextToken")
        while next_token:
            if not deadline.allows(_CALL_SECONDS):  # the job is done: the next invocation reads it
                raise Parked(f"Textract job {job_id} is done, its results not yet read", job_id=job_id)
            response = self._poll(job_id, deadline, 0, MaxResults=1000, NextToken=next_token)
            blocks.extend(response.get("Blocks", []))
            next_token = response.get("NextToken")
        return blocks_to_elements(blocks, default_page=1)

    def start(self, bucket: str, key: str, token: str) -> str:
        """Start a text detection job; the same token (same bytes at the same place) joins its job."""
        location = {"S3Object": {"Bucket": bucket, "Name": key}}
        try:
            started = self._call(
                "start_document_text_detection", DocumentLocation=location, ClientRequestToken=token
            )
        except _TokenReused:
            # the token is bound to a job with other parameters: start this one under a fresh token
            fresh = hashlib.sha256(f"{token}|{uuid.uuid4()}".encode()).hexdigest()[:64]
            started = self._call(
                "start_document_text_detection", DocumentLocation=location, ClientRequestToken=fresh
            )
        return str(started["JobId"])

    def _poll(self, job_id: str, deadline: Deadline, retry_after: int, **params: Any) -> dict[str, Any]:
        """GetDocumentTextDetection; throttled or failing past the time left, the job is parked
        (it runs on at Textract), not failed."""
        try:
            return self._call("get_document_text_detection", deadline=deadline, JobId=job_id, **params)
        except (Throttled, ServiceUnavailable) as exc:
            if not deadline.bounded:
                raise
            raise Parked(f"Textract job {job_id}: {exc}", job_id=job_id, retry_after=retry_after) from None

    # -- one call with retries ----------------------------------------------------------------------

    def _call(self, operation: str, *, deadline: Deadline = UNBOUNDED, **params: Any) -> dict[str, Any]:
        """One Textract call, retried with backoff while tries and ``deadline`` allow (a next try is
        made only if its pause and the call still fit); throttling and outages that persist become
        Throttled / ServiceUnavailable, a refused document a permanent error at once."""
        tries = 0

        def once() -> dict[str, Any]:
            nonlocal tries
            tries += 1
            self.calls.append(operation)
            with _translated(tries):
                return getattr(self.client, operation)(**params)  # type: ignore[no-any-return]

        return retrying(
            once,
            attempts=self.max_attempts,
            retry_on=(Throttled, ServiceUnavailable),
            deadline=deadline,
            backoff=Backoff(base=self.base_delay, cap=self.max_delay),
            call_seconds=_CALL_SECONDS,
            sleep=lambda seconds: _sleep(seconds),  # late-bound: tests replace ``_sleep``
        )


@contextmanager
def _translated(tries: int) -> Iterator[None]:
    """botocore's errors of one Textract call as ours, saying how many tries were made so far."""
    from botocore.exceptions import ClientError, HTTPClientError, NoCredentialsError
    from botocore.exceptions import ConnectionError as BotoConnectionError

    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        message = str(error.get("Message", ""))[:300]
        if code in _THROTTLE_CODES or status == 429:
            raise Throttled(
                f"Textract is throttling ({code or '429'}) after {tries} tries; will retry later"
            ) from None
        if code in _SERVER_CODES or status >= 500:
            raise ServiceUnavailable(f"Textract unavailable ({code or status}) after {tries} tries") from None
        if code == "IdempotentParameterMismatchException":
            raise _TokenReused(message) from None
        raise _permanent(code, message) from None
    except NoCredentialsError:
        raise ConfigError(
            "Textract needs AWS credentials: configure them, or set RAGSTREAM_OCR=tesseract"
        ) from None
    except (BotoConnectionError, HTTPClientError) as exc:  # timeouts, resets, DNS
        raise ServiceUnavailable(f"Textract unreachable ({type(exc).__name__}) after {tries} tries") from None


class _TokenReused(Exception):
    """Textract bound this ClientRequestToken to a job with other parameters."""


def job_token(
    bucket: str, key: str, *, version: str, etag: str | None = None, version_id: str | None = None
) -> str:
    """The ClientRequestToken of one object's bytes at one S3 location (bucket, key, version id, ETag).

    A retried invocation joins the job it started; the same bytes under another key start their own
    job (a token names one set of parameters, or Textract answers IdempotentParameterMismatch).
    """
    raw = "\n".join((bucket, key, version_id or "", etag or "", version))
    return hashlib.sha256(raw.encode()).hexdigest()[:64]


def _permanent(code: str, message: str) -> Exception:
    if code == "UnsupportedDocumentException":
        return UnsupportedFormat(
            "Textract does not support this document's format (PNG, JPEG, TIFF, PDF only)"
        )
    if code == "BadDocumentException":
        return CorruptDocument("Textract cannot read the document: it is damaged or not a valid image/PDF")
    if code == "DocumentTooLargeException":
        return TooLarge("document exceeds Textract's size limits (10 MB sync, 500 MB async)")
    if code in _CONFIG_CODES:
        return ConfigError(f"Textract refused ({code}): {message}. Check the role's permissions and region")
    if code == "InvalidParameterException":
        return CorruptDocument(f"Textract rejected the document: {message}")
    return ConfigError(f"Textract error {code}: {message}")


def blocks_to_elements(
    blocks: Iterable[dict[str, Any]], *, default_page: int = 1, page_offset: int = 0
) -> list[Element]:
    """LINE blocks to paragraphs in reading order, page by page (WORD blocks are not needed)."""
    by_page: dict[int, list[Line]] = {}
    for block in blocks:
        if block.get("BlockType") != "LINE" or not str(block.get("Text", "")).strip():
            continue
        box = block.get("Geometry", {}).get("BoundingBox", {})
        page = int(block.get("Page") or 1) + page_offset if "Page" in block else default_page
        by_page.setdefault(page, []).append(
            Line(
                text=str(block["Text"]),
                left=float(box.get("Left", 0.0)),
                top=float(box.get("Top", 0.0)),
                width=float(box.get("Width", 0.0)),
                height=float(box.get("Height", 0.0)),
            )
        )
    elements: list[Element] = []
    for page in sorted(by_page):
        elements += lines_to_elements(order_lines(by_page[page]), page, source="textract")
    return elements
