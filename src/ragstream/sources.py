"""Source URIs, the identity of every document: ``s3://bucket/key`` or ``file:///abs/path``.

Every module builds and takes them apart here, so that there is one spelling of each: the ledger,
the index and the API all hold the same string for the same object.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote_to_bytes, urlparse

from .model import Change, SourceRef

__all__ = [
    "bucket_of",
    "deletion",
    "is_s3",
    "key_of",
    "path_of",
    "prefix_of",
    "root_prefix",
    "s3_source",
]


def s3_source(bucket: str, key: str) -> str:
    """The canonical source URI of an S3 object (the key decoded, as stored in S3)."""
    return f"s3://{bucket}/{key}"


def is_s3(source: str) -> bool:
    return source.startswith("s3://")


def bucket_of(source: str) -> str | None:
    """The bucket of an ``s3://`` source; None for a local file."""
    return source[5:].split("/", 1)[0] if is_s3(source) else None


def key_of(source: str) -> str:
    """The S3 key of an ``s3://`` source, else the file name."""
    if is_s3(source):
        return source[5:].partition("/")[2]
    return source.rsplit("/", 1)[-1]


def path_of(source: str) -> Path:
    """The local path of a ``file://`` source (the exact bytes of the name, whatever its encoding)."""
    return Path(os.fsdecode(unquote_to_bytes(urlparse(source).path)))


def prefix_of(root: str) -> str:
    """The source prefix of everything under ``root``: a URI as given; a local path as its
    ``file://`` URI, a folder ending in ``/`` (so that ``/docs`` never matches ``/docs2``)."""
    if "://" in root:
        return root
    path = Path(root).resolve()
    return path.as_uri() + ("/" if path.is_dir() else "")


def root_prefix(root: str) -> str:
    """The source prefix a sync of ``root`` answers for: a URI as given; a local file, itself;
    anything else, a folder (so a missing folder's prefix still ends in ``/``)."""
    if "://" in root:
        return root
    path = Path(root).resolve()
    return path.as_uri() if path.is_file() else path.as_uri().rstrip("/") + "/"


def deletion(source: str, *, sequencer: str | None = None) -> SourceRef:
    """The ref that removes ``source`` from the index, as its delete event would."""
    return SourceRef(
        source=source, bucket=bucket_of(source), key=key_of(source), change=Change.DELETE, sequencer=sequencer
    )
