"""The one exception hierarchy of ragstream.

Errors of other libraries (botocore, qdrant, openai, parsers) are translated into these at the
boundary. ``retryable`` decides between "record the failure and acknowledge" (permanent) and
"retry with backoff, then hand the message back to the queue" (transient).
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "CorruptDocument",
    "DimensionMismatch",
    "DocumentError",
    "EmptyDocument",
    "EncryptedDocument",
    "HomeInUse",
    "IndexUnavailable",
    "OcrUnavailable",
    "Parked",
    "RagstreamError",
    "RejectedSource",
    "ServiceUnavailable",
    "Throttled",
    "TooLarge",
    "TransientError",
    "Unreadable",
    "UnsupportedFormat",
]


class RagstreamError(Exception):
    """Base of every error ragstream raises on purpose."""

    retryable: bool = False

    @property
    def kind(self) -> str:
        """The error's class name, as recorded in the ledger."""
        return type(self).__name__


class ConfigError(RagstreamError):
    """The settings are inconsistent or incomplete; the message says which one to fix."""


class HomeInUse(ConfigError):
    """Another process holds the embedded state folder; the message names it."""


class DimensionMismatch(ConfigError):
    """The collection's vector size differs from the embedder's."""


class RejectedSource(RagstreamError):
    """An event names a source this deployment does not read: no bucket, another bucket, a path outside
    the folder asked for, a ``..`` key. Nothing is fetched, indexed or recorded in the ledger."""


# -- permanent: the document itself is the problem; record it and move on -------------------------


class DocumentError(RagstreamError):
    """A document that cannot be indexed as it is; retrying will not help."""


class UnsupportedFormat(DocumentError):
    """The detected type has no extractor."""


class EmptyDocument(DocumentError):
    """The document holds no text to index."""


class EncryptedDocument(DocumentError):
    """The document is password-protected or encrypted."""


class CorruptDocument(DocumentError):
    """The document is damaged or not what its name says."""


class TooLarge(DocumentError):
    """The document exceeds a configured or service limit."""


class OcrUnavailable(DocumentError):
    """The document needs OCR and no OCR engine is configured or installed."""


class Unreadable(DocumentError):
    """The file cannot be read as a document: permissions, a FIFO or device, a symlink out of the folder."""


# -- transient: a dependency is the problem; retry later --------------------------------------------


class TransientError(RagstreamError):
    """A dependency failed in a way that a later retry may fix."""

    retryable = True


class Throttled(TransientError):
    """A provider kept answering 429 / throttling past our retries."""


class ServiceUnavailable(TransientError):
    """A provider timed out or answered 5xx past our retries."""


class IndexUnavailable(TransientError):
    """The vector index could not be reached."""


# -- neither: the work goes on elsewhere; come back later -------------------------------------------


class Parked(RagstreamError):
    """A long step (an asynchronous Textract job) outlives this invocation; resume it later."""

    def __init__(self, message: str, *, job_id: str | None = None, retry_after: int = 0) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.retry_after = retry_after
