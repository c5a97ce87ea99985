"""The store kit: what every store module does the same way, written once.

Seven stores implement one contract; where they did the same thing seven ways (remembering a
collection, refusing one of another dimension, translating a client's failures, splitting a write
into requests), a newcomer had seven things to read and a change had seven places to go. The kit holds
only what is client-free: matching a client's own exceptions stays in the store's module (only that
module imports its client), and retrying stays with :mod:`ragstream.retry`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

from ..errors import ConfigError, DimensionMismatch, IndexUnavailable, RagstreamError
from .contract import Point

__all__ = [
    "Ready",
    "all_of",
    "any_of",
    "batches",
    "check_dimension",
    "dimension_mismatch",
    "failed",
    "last_of_each",
    "missing_collection",
    "ping",
    "transient_status",
    "translate_http_status",
    "unreachable",
    "vector_refused",
]

T = TypeVar("T")
P = TypeVar("P")

#: What to do about a collection made for another embedder: either way the index is built anew.
ADVICE = "set RAGSTREAM_COLLECTION to a new name, or delete the {kind} and re-ingest"


class Ready:
    """What a store knows of its collection without asking: the dimension ``ensure_collection``
    succeeded for, and whether the collection exists.

    The pipeline calls ``ensure_collection`` before every flush; asking the server each time costs a
    round trip (two for Milvus) per batch. Once it succeeded for a dimension it is not asked again
    for that one (another dimension asks, and is refused); :meth:`forget` (on close, or when the
    collection is dropped) makes the next call ask again. A collection deleted behind the store's back
    then shows as an error of the next write, not as a silent re-creation.
    """

    __slots__ = ("_dim", "_exists")

    def __init__(self) -> None:
        self._dim: int | None = None
        self._exists = False

    def known(self, dim: int) -> bool:
        """Whether the collection is ready for vectors of ``dim`` (no need to ask)."""
        return self._dim == dim

    def remember(self, dim: int) -> None:
        """``ensure_collection(dim)`` succeeded: the collection exists with that dimension."""
        self._dim = dim
        self._exists = True

    def forget(self) -> None:
        """Know nothing again (the client closed, or the collection was dropped)."""
        self._dim = None
        self._exists = False

    def exists(self, ask: Callable[[], object]) -> bool:
        """Whether the collection exists: known once ensured or once ``ask`` said so; asked until then
        (before the first write a store answers reads as empty without creating anything)."""
        if not self._exists:
            self._exists = bool(ask())
        return self._exists


# -- the collection's dimension --------------------------------------------------------------------


def dimension_mismatch(
    collection: str, have: int | None, want: int, *, kind: str = "collection"
) -> DimensionMismatch:
    """The refusal of a collection whose dense vector is ``have`` long (None: it has none of ours)
    where the embedder gives ``want``; the message says what to do about it."""
    if have is None:
        return DimensionMismatch(
            f"{kind} {collection!r} has no dense vector of ragstream's layout: it was not made by "
            "ragstream; set RAGSTREAM_COLLECTION to another name"
        )
    return DimensionMismatch(
        f"{kind} {collection!r} has dimension {have}, the embedder gives {want}: " + ADVICE.format(kind=kind)
    )


def check_dimension(collection: str, have: int | None, want: int, *, kind: str = "collection") -> None:
    """Refuse a collection whose dense vector is missing or of another size than the embedder's."""
    if have != want:
        raise dimension_mismatch(collection, have, want, kind=kind)


def vector_refused(message: str, collection: str | None, *, kind: str = "collection") -> DimensionMismatch:
    """The engine's own refusal of a vector of another length (``message``), with the same advice: a
    collection the store did not check (made elsewhere, or by another process meanwhile)."""
    which = f"{kind} {collection!r}" if collection is not None else f"the {kind}"
    return DimensionMismatch(f"{message}: {which} was made for another embedder; " + ADVICE.format(kind=kind))


def missing_collection(collection: str, *, kind: str = "collection") -> ConfigError:
    """A write before ``ensure_collection``: a bug of the caller, not an outage (no retry helps)."""
    return ConfigError(f"{kind} {collection!r} does not exist: call ensure_collection first")


# -- a client's failures as ours -------------------------------------------------------------------


def transient_status(status: int) -> bool:
    """Whether an HTTP status is the service's trouble (429, 5xx), which a later try may not meet."""
    return status == 429 or status >= 500


def translate_http_status(status: int, what: str, detail: object = "") -> RagstreamError:
    """The error of ours for a store's HTTP answer ``status`` (``what``: the store's name).

    Refused credentials and refused requests are configuration (a retry gets the same answer);
    throttling and 5xx are the index being unavailable, which the pipeline retries and then hands
    back to the queue (IndexUnavailable rather than Throttled: the store's retry predicates and the
    ledger's kinds name the index, whatever its trouble).
    """
    if status in (401, 403):
        return ConfigError(f"{what} refused the credentials (HTTP {status}): check RAGSTREAM_INDEX_API_KEY")
    if transient_status(status):
        return IndexUnavailable(f"{what} failed (HTTP {status}): {detail}")
    return ConfigError(f"{what} refused the request (HTTP {status}): {detail}")


def unreachable(what: str, exc: BaseException) -> IndexUnavailable:
    """No answer from the store (connection refused, timeout, its client's retries spent)."""
    return IndexUnavailable(f"{what} is unreachable: {type(exc).__name__}: {exc}")


def failed(what: str, detail: object) -> IndexUnavailable:
    """The store answered, with a failure of its own (storage, an outage) that may pass."""
    return IndexUnavailable(f"{what} failed: {detail}")


def ping(what: str, probe: Callable[[], T]) -> T:
    """Run one cheap call for the health check: any failure means the store is unreachable (the
    check logs only the error's kind; its message is for whoever reads the exception)."""
    try:
        return probe()
    except Exception as exc:
        raise unreachable(what, exc) from exc


# -- writes and filters ------------------------------------------------------------------------------


def last_of_each(points: Sequence[Point]) -> list[Point]:
    """The points with duplicate ids removed, the last one winning, as in every store (several
    clients refuse duplicate ids in one request)."""
    return list({p.id: p for p in points}.values())


def batches(items: Sequence[P], size: int) -> Iterator[Sequence[P]]:
    """``items`` in requests of at most ``size``, in order."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def all_of(terms: list[T], combine: Callable[[list[T]], T]) -> T | None:
    """An AND of filter terms in a store's language: none is no filter, one stands alone (Chroma's
    ``$and`` wants two or more), more are ``combine``-d."""
    if not terms:
        return None
    return terms[0] if len(terms) == 1 else combine(terms)


def any_of(terms: list[T], combine: Callable[[list[T]], T]) -> T:
    """An OR of one or more filter terms: one stands alone, more are ``combine``-d."""
    return terms[0] if len(terms) == 1 else combine(terms)
