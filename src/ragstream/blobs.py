"""Where documents come from: a folder on disk or an S3 bucket. Both list sources and read bytes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlparse

from .errors import ServiceUnavailable, Throttled, TooLarge
from .model import SourceRef

__all__ = ["BlobStore", "Blobs", "LocalFiles", "MemoryBlobs", "ObjectGone", "S3Objects", "file_ref", "s3_ref"]


class ObjectGone(Exception):
    """The object was deleted after its event was sent; its delete event will follow or has come."""


class BlobStore(Protocol):
    def read(self, ref: SourceRef, *, max_bytes: int) -> tuple[bytes, SourceRef]:
        """The object's bytes, and its ref completed with size, type and user metadata."""
        ...

    def list(self, root: str) -> Iterator[SourceRef]:
        """Every object under ``root`` (a folder path, or ``s3://bucket/prefix``)."""
        ...

    def head(self, ref: SourceRef) -> SourceRef | None:
        """The object's current state (size, ETag), or None when the key has no live object."""
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

    def head(self, ref: SourceRef) -> SourceRef | None:
        path = path_of(ref.source)
        if not path.is_file():
            return None
        current = file_ref(path)
        return ref.model_copy(update={"size": current.size, "etag": current.etag})

    def list(self, root: str) -> Iterator[SourceRef]:
        base = Path(root)
        if base.is_file():
            yield file_ref(base, base.parent)
            return
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if not name.startswith("."):
                    yield file_ref(Path(dirpath) / name, base)


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

    def head(self, ref: SourceRef) -> SourceRef | None:
        """HeadObject of the current version: None when the key is gone or a delete marker is on top."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            head = self.client.head_object(Bucket=ref.bucket, Key=ref.key)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404", "NotFound", "405", "MethodNotAllowed"):
                return None
            raise _translate(exc) from exc
        except BotoCoreError as exc:
            raise ServiceUnavailable(f"S3 head of {ref.source} failed: {exc}") from exc
        return ref.model_copy(
            update={"size": head.get("ContentLength"), "etag": (head.get("ETag") or "").strip('"') or None}
        )

    def list_page(
        self, root: str, *, token: str | None = None, limit: int = 1000
    ) -> tuple[list[SourceRef], str | None]:
        """One page (one ListObjectsV2 call) of the objects under ``s3://bucket/prefix``, and the
        continuation token of the next page (None after the last)."""
        from botocore.exceptions import BotoCoreError, ClientError

        parsed = urlparse(root)
        bucket, prefix = parsed.netloc, parsed.path.lstrip("/")
        kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": limit}
        if token:
            kwargs["ContinuationToken"] = token
        try:
            page = self.client.list_objects_v2(**kwargs)
        except ClientError as exc:
            raise _translate(exc) from exc
        except BotoCoreError as exc:
            raise ServiceUnavailable(f"S3 listing of {root} failed: {exc}") from exc
        refs = [
            s3_ref(
                bucket,
                obj["Key"],
                size=obj["Size"],
                etag=obj["ETag"].strip('"'),
                last_modified=obj["LastModified"],
            )
            for obj in page.get("Contents", [])
            if not obj["Key"].endswith("/")  # folder placeholder
        ]
        return refs, page.get("NextContinuationToken") if page.get("IsTruncated") else None

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

    def head(self, ref: SourceRef) -> SourceRef | None:
        data = self.documents.get(ref.source)
        return None if data is None else ref.model_copy(update={"size": len(data)})

    def list(self, root: str) -> Iterator[SourceRef]:
        for source in sorted(self.documents):
            if source.startswith(root):
                yield SourceRef(source=source, key=source[len(root) :].lstrip("/") or source)


class Blobs:
    """Reads and lists by scheme: ``s3://`` through S3, anything else from the local filesystem."""

    def __init__(self, s3_client: Any = None):
        self.local = LocalFiles()
        self.s3 = S3Objects(s3_client)

    def read(self, ref: SourceRef, *, max_bytes: int) -> tuple[bytes, SourceRef]:
        return (self.s3 if ref.bucket else self.local).read(ref, max_bytes=max_bytes)

    def list(self, root: str) -> Iterator[SourceRef]:
        return (self.s3 if root.startswith("s3://") else self.local).list(root)

    def head(self, ref: SourceRef) -> SourceRef | None:
        return (self.s3 if ref.bucket else self.local).head(ref)
