"""The one retry policy of ragstream: which errors are tried again, how long to wait, when to stop.

A call to a dependency (a vector store, an embedder, Textract, DynamoDB) that fails transiently is
tried again after an exponential backoff with jitter (half to all of ``base * 2**(tries - 1)``, at
most ``cap``), or after the server's Retry-After when the error carries one (at most ``max_hint``),
for a bounded number of tries. With a bounded :class:`~ragstream.budget.Deadline` it never sleeps past
the time left: when the pause and the next call would not fit, it stops and the last error is raised.
Which errors are transient is the caller's to say (``retry_on``); by default ragstream's own
:class:`~ragstream.errors.TransientError` and its kinds (Throttled, ServiceUnavailable,
IndexUnavailable), so that a caller translating a library's errors into ours first retries exactly
what it would report as "retry later".

Why tenacity: it is small, well kept and widely used (chromadb and LangChain depend on it); its stop,
wait and sleep are plain callables, so the deadline, the Retry-After hint and a fake clock in tests fit
without a hand-written loop in every module. It is imported on the first retry-wrapped call only.

Where a client's own retries are used instead: a boto3 client retries throttling, 5xx and
connection errors itself, and ragstream keeps that: ``Config(retries={"mode": "standard"})`` for S3,
SQS, the DynamoDB ledger and Textract (botocore's ``"adaptive"`` mode where a client should also
rate-limit itself). Botocore knows every AWS error code and keeps a retry quota per client; a second
policy around each call would multiply the tries. This module covers only what botocore cannot see:
Textract's retries bounded by the invocation's deadline (its client keeps two tries of its own), and
DynamoDB's BatchGetItem answering with UnprocessedKeys, which is a success to botocore. The same
rule holds for the store clients: the pinecone SDK retries connection errors, 429 and 5xx itself
(with Retry-After and a retry budget), so Pinecone's calls are not wrapped again; pymilvus retries a
failed RPC and weaviate-client its gRPC calls, so Milvus and Weaviate retry here only what their
client did not (a timeout, a REST 5xx, a refused connection). Qdrant and Chroma's HTTP clients do not
retry: theirs is this policy.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from .budget import UNBOUNDED, Deadline
from .errors import TransientError

if TYPE_CHECKING:
    import tenacity

__all__ = ["STORES", "TRANSIENT", "Backoff", "RetryOn", "retry_after", "retrying"]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Which errors are retried: exception types, or a predicate on the error.
RetryOn = type[BaseException] | tuple[type[BaseException], ...] | Callable[[BaseException], bool]

#: ragstream's transient errors (Throttled, ServiceUnavailable, IndexUnavailable are kinds of it).
TRANSIENT: tuple[type[BaseException], ...] = (TransientError,)


@dataclass(frozen=True)
class Backoff:
    """How long to wait before try ``tries + 1``: the server's hint, or exponential with jitter.

    The jitter (a random half to all of the exponential pause) keeps the clients that failed
    together from coming back together. ``max_hint`` bounds what a server may impose on one pause.
    """

    base: float = 0.5
    cap: float = 20.0
    max_hint: float = 60.0

    def pause(self, tries: int, hint: float | None = None) -> float:
        """Seconds to wait after ``tries`` failed tries (1 after the first), given a server's hint."""
        if hint is not None:
            return min(max(0.0, hint), self.max_hint)
        return random.uniform(0.5, 1.0) * min(self.cap, self.base * 2 ** (tries - 1))


#: The vector stores' calls: half a second doubling to 8 s between tries (about 7 s over 5 tries).
STORES = Backoff(base=0.5, cap=8.0)


def retry_after(exc: BaseException) -> float | None:
    """Seconds the server asked to wait (``retry-after-ms`` or ``Retry-After``), if it said.

    Read from the error's response headers (httpx, requests, an SDK's ``headers``, botocore's
    ``ResponseMetadata``), qdrant-client's ``retry_after_s``, or from the error it was translated
    from (its cause, or the error being handled when it was raised ``from None``).
    """
    seen: BaseException | None = exc
    for _ in range(3):  # the error, the one it was translated from, and that one's
        if seen is None:
            return None
        seconds = getattr(seen, "retry_after_s", None)  # qdrant-client's ResourceExhaustedResponse
        if isinstance(seconds, int | float):
            return max(0.0, float(seconds))
        headers = _headers(seen)
        if headers is not None:
            hint = _parse_hint(headers)
            if hint is not None:
                return hint
        seen = seen.__cause__ or seen.__context__
    return None


def _headers(exc: BaseException) -> object | None:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):  # botocore's ClientError
        meta = response.get("ResponseMetadata")
        return meta.get("HTTPHeaders") if isinstance(meta, dict) else None
    headers = getattr(response, "headers", None)
    return headers if headers is not None else getattr(exc, "headers", None)


def _parse_hint(headers: object) -> float | None:
    get = getattr(headers, "get", None)
    if get is None:
        return None
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = get(name)
        if value is None and isinstance(headers, dict):  # a plain dict is case-sensitive
            value = next((v for k, v in headers.items() if str(k).lower() == name), None)
        if value is None:
            continue
        try:
            return max(0.0, float(value) * scale)
        except (TypeError, ValueError):
            try:
                when = email.utils.parsedate_to_datetime(str(value))
            except (TypeError, ValueError):
                continue
            return max(0.0, when.timestamp() - time.time())
    return None


def retrying(
    call: Callable[[], T],
    *,
    attempts: int,
    retry_on: RetryOn = TRANSIENT,
    deadline: Deadline = UNBOUNDED,
    backoff: Backoff = Backoff(),
    wait_hint: Callable[[BaseException], float | None] | None = retry_after,
    call_seconds: float = 0.0,
    sleep: Callable[[float], None] | None = None,
    what: str | None = None,
) -> T:
    """``call()``, tried at most ``attempts`` times while it raises what ``retry_on`` names.

    Between tries it waits ``wait_hint(error)`` when that says (a server's Retry-After), else the
    exponential ``backoff``. With a bounded ``deadline`` it tries again only if the pause and one
    more call (``call_seconds``) still fit. When it gives up, the last error is raised as it was, for
    the caller to translate; other errors pass through at once. ``sleep`` replaces ``time.sleep``
    (tests give a fake clock). With ``what``, each retry is logged as a warning.
    """
    import tenacity

    def wait(state: tenacity.RetryCallState) -> float:
        error = _error(state)
        hint = wait_hint(error) if wait_hint is not None else None
        return backoff.pause(state.attempt_number, hint)

    class OutOfTime(tenacity.stop.stop_base):
        """Stop when the pause and one more call would not fit in the deadline."""

        def __call__(self, state: tenacity.RetryCallState) -> bool:
            return not deadline.allows(state.upcoming_sleep + call_seconds)

    def announce(state: tenacity.RetryCallState) -> None:
        if what is not None:
            log.warning(
                "%s failed (%s), try %d of %d; retrying in %.1fs",
                what, type(_error(state)).__name__, state.attempt_number, attempts, state.upcoming_sleep,
            )  # fmt: skip

    retryer = tenacity.Retrying(
        retry=_retry_condition(retry_on),
        stop=tenacity.stop_after_attempt(max(1, attempts)) | OutOfTime(),
        wait=wait,
        before_sleep=announce,
        sleep=sleep if sleep is not None else time.sleep,
        reraise=True,
    )
    return retryer(call)


def _error(state: tenacity.RetryCallState) -> BaseException:
    outcome = state.outcome
    error = outcome.exception() if outcome is not None else None
    if error is None:  # pragma: no cover - only errors are retried here
        raise AssertionError("a retry without an error")
    return error


def _retry_condition(retry_on: RetryOn) -> tenacity.retry_base:
    import tenacity

    if isinstance(retry_on, (type, tuple)):
        return tenacity.retry_if_exception_type(retry_on)
    return tenacity.retry_if_exception(retry_on)
