"""Where documents come from: a folder on disk or an S3 bucket. Both list sources and read bytes."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlparse

from .errors import RejectedSource, ServiceUnavailable, Throttled, TooLarge
from .model import SourceRef
from .printable import printable

__all__ = [
    "BlobStore",
    "Blobs",
    "LocalFiles",
    "MemoryBlobs",
    "ObjectGone",
    "S3Objects",
    "SourcePolicy",
    "file_ref",
    "s3_ref",
]

log = logging.getLogger(__name__)

#: S3's bucket naming rules (lower case letters, digits, dots and hyphens; 3 to 63 characters).
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")


class ObjectGone(Exception):
    """The object was deleted after its event was sent; its delete event will follow or has come."""


class BlobStore(Protocol):
    def read(self, ref: SourceRef, *, max_bytes: int) -> tuple[bytes, SourceRef]:
        """The object's bytes, and its ref completed with size, type and user metadata."""
        ...

    def list(self, root: str) -> Iterator[SourceRef]:
        """Every object under ``root`` (a folder path, or ``s3://bucket/prefix``)."""
        ...


def file_ref(path: Path, root: Path | None = None) -> SourceRef:
    """The SourceRef of a local file: source ``file:///abs/path``, key relative to ``root``."""
    path = path.resolve()
    stat = path.stat()
    key = path.relative_to(root.resolve()).as_posix() if root else path.name
    return SourceRef(
        source=path.as_uri(),
        key=key,
        size=stat.st_size,
        etag=f"{stat.st_mtime_ns:x}-{stat.st_size:x}",
        last_modified=datetime.fromtimestamp(stat.st_mtime, UTC),
    )


def path_of(source: str) -> Path:
    """The local path of a ``file://`` source."""
    return Path(unquote(urlparse(source).path))


def _dot_segment(path: str) -> bool:
    """Whether a key or path has a ``.`` or ``..`` segment (it would name another path once normalised)."""
    return any(part in (".", "..") for part in path.split("/"))


@dataclass(frozen=True)
class SourcePolicy:
    """Which sources a pipeline may read: checked before anything is fetched or recorded.

    - An S3 source must name a bucket (a valid name, the one of its URI), a key without ``.`` or
      ``..`` segments, and, when ``buckets`` is given, one of those buckets.
    - A local source is read only when ``local`` is true: an absolute ``file://`` path without
      ``..`` segments, inside one of ``roots`` when given (symbolic links resolved).
    - Any other scheme is refused.

    The ingest Lambda uses :meth:`bucket_only`: the configured bucket, never the local disk.
    """

    buckets: frozenset[str] | None = None
    local: bool = True
    roots: tuple[Path, ...] | None = None

    @classmethod
    def bucket_only(cls, bucket: str | None) -> SourcePolicy:
        """Only objects of ``bucket`` (the deployment's RAGSTREAM_BUCKET); no local file ever."""
        from .errors import ConfigError

        if not bucket:
            raise ConfigError("RAGSTREAM_BUCKET is not set: the ingest function reads only that bucket")
        return cls(buckets=frozenset({bucket}), local=False)

    def check(self, ref: SourceRef) -> None:
        """Raise :class:`RejectedSource` (with the reason) unless this policy lets ``ref`` be read."""
        scheme, sep, rest = ref.source.partition("://")
        if scheme == "s3" and sep:
            self._check_s3(ref, rest)
        elif scheme == "file" and sep:
            self._check_local(ref)
        else:
            raise RejectedSource(f"unknown source scheme {scheme!r}: only s3:// and file:// are read")

    def _check_s3(self, ref: SourceRef, rest: str) -> None:
        bucket = ref.bucket or ""
        if not bucket:
            raise RejectedSource("the event names no bucket")
        if not _BUCKET_NAME.match(bucket):
            raise RejectedSource("the event's bucket name is not a valid S3 bucket name")
        if rest != f"{bucket}/{ref.key}" or not ref.key:
            raise RejectedSource("the source URI does not match its bucket and key")
        if _dot_segment(ref.key):
            raise RejectedSource("the key has a '.' or '..' segment")
        if self.buckets is not None and bucket not in self.buckets:
            raise RejectedSource("the bucket is not the one this deployment reads")

    def _check_local(self, ref: SourceRef) -> None:
        if not self.local:
            raise RejectedSource("local files are not read here")
        raw = urlparse(ref.source).path
        if not raw.startswith("/") or _dot_segment(unquote(raw)):
            raise RejectedSource("the local path is not absolute or has a '..' segment")
        if self.roots is not None:
            path = path_of(ref.source).resolve()
            if not any(path.is_relative_to(root.resolve()) for root in self.roots):
                raise RejectedSource("the file is outside the folder asked for")


class LocalFiles:
    """Files on disk. Hidden files and folders (``.name``) are left out of listings."""

    def read(self, ref: SourceRef, *, max_bytes: int) -> tuple[bytes, SourceRef]:
        path = path_of(ref.source)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise ObjectGone(ref.source) from None
        _check_size(size, max_bytes)
        return path.read_bytes(), ref

    def list(self, root: str) -> Iterator[SourceRef]:
        """Every file under ``root``; a symbolic link that leads outside it is left out (logged)."""
        base = Path(root)
        if base.is_file():
            yield file_ref(base, base.parent)
            return
        inside = base.resolve()
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if name.startswith("."):
                    continue
                path = Path(dirpath) / name
                if not path.resolve().is_relative_to(inside):
                    log.warning("skipped %s: it links outside %s", printable(str(path)), printable(root))
                    continue
                yield file_ref(path, base)


class S3Objects:
    """Objects in S3 (or anything that speaks its API, given an endpoint)."""

    def __init__(self, client: Any = None):
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            self._client = boto3.client("s3", config=Config(retries={"mode": "standard", "max_attempts": 5}))
        return self._client

    def read(self, ref: SourceRef, *, max_bytes: int) -> tuple[bytes, SourceRef]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            head = self.client.head_object(Bucket=ref.bucket, Key=ref.key)
            _check_size(head["ContentLength"], max_bytes)
            response = self.client.get_object(Bucket=ref.bucket, Key=ref.key)
            data = response["Body"].read()
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404", "NotFound"):
                raise ObjectGone(ref.source) from None
            raise _translate(exc) from exc
        except BotoCoreError as exc:
            raise ServiceUnavailable(f"S3 read of {ref.source} failed: {exc}") from exc
        content_type = response.get("ContentType")
        user = dict(response.get("Metadata") or {})
        if content_type and content_type != "binary/octet-stream":
            user.setdefault("s3_content_type", content_type)
        return data, ref.model_copy(
            update={
                "size": len(data),
                "etag": (response.get("ETag") or "").strip('"') or ref.etag,
                "last_modified": response.get("LastModified") or ref.last_modified,
                "user_metadata": user,
            }
        )

    def list(self, root: str) -> Iterator[SourceRef]:
        parsed = urlparse(root)
        bucket, prefix = parsed.netloc, parsed.path.lstrip("/")
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                if obj["Key"].endswith("/"):
                    continue  # folder placeholder
                yield s3_ref(
                    bucket,
                    obj["Key"],
                    size=obj["Size"],
                    etag=obj["ETag"].strip('"'),
                    last_modified=obj["LastModified"],
                )


def s3_ref(bucket: str, key: str, **fields: Any) -> SourceRef:
    """The SourceRef of an S3 object; ``key`` is the decoded key."""
    return SourceRef(source=f"s3://{bucket}/{key}", bucket=bucket, key=key, **fields)


def _check_size(size: int, max_bytes: int) -> None:
    if size > max_bytes:
        raise TooLarge(f"document is {size / 2**20:.1f} MB, over the {max_bytes / 2**20:.0f} MB limit")


def _translate(exc: Any) -> Exception:
    code = exc.response.get("Error", {}).get("Code", "")
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    if code in ("SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded"):
        return Throttled(f"S3 throttled: {code}")
    if status >= 500 or code in ("InternalError", "ServiceUnavailable", "RequestTimeout"):
        return ServiceUnavailable(f"S3 error {code or status}")
    return exc


class MemoryBlobs:
    """Documents held in memory, keyed by source: for datasets (``ragstream eval``) and tests."""

    def __init__(self, documents: dict[str, bytes] | None = None):
        self.documents = dict(documents or {})

    def read(self, ref: SourceRef, *, max_bytes: int) -> tuple[bytes, SourceRef]:
        try:
            return self.documents[ref.source], ref
        except KeyError:
            raise ObjectGone(ref.source) from None

    def list(self, root: str) -> Iterator[SourceRef]:
        for source in sorted(self.documents):
            if source.startswith(root):
                yield SourceRef(source=source, key=source[len(root) :].lstrip("/") or source)


class Blobs:
    """Reads and lists by scheme: ``s3://`` through S3, ``file://`` from the local filesystem.

    The scheme of the source decides, never the presence of a bucket: an ``s3://`` source without a
    bucket is refused, not read from disk.
    """

    def __init__(self, s3_client: Any = None):
        self.local = LocalFiles()
        self.s3 = S3Objects(s3_client)

    def read(self, ref: SourceRef, *, max_bytes: int) -> tuple[bytes, SourceRef]:
        if ref.source.startswith("s3://"):
            if not ref.bucket or not ref.source.startswith(f"s3://{ref.bucket}/"):
                raise RejectedSource("an s3:// source must name its bucket")
            return self.s3.read(ref, max_bytes=max_bytes)
        if ref.source.startswith("file://"):
            return self.local.read(ref, max_bytes=max_bytes)
        raise RejectedSource("only s3:// and file:// sources are read")

    def list(self, root: str) -> Iterator[SourceRef]:
        return (self.s3 if root.startswith("s3://") else self.local).list(root)
