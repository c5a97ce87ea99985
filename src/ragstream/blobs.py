"""Where documents come from: a folder on disk or an S3 bucket. Both list sources and read bytes."""

from __future__ import annotations

import errno
import logging
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import unquote, urlparse

from .errors import RejectedSource, ServiceUnavailable, Throttled, TooLarge, Unreadable
from .model import SourceRef
from .sources import path_of, s3_source

__all__ = [
    "BlobStore",
    "Blobs",
    "LocalFiles",
    "MemoryBlobs",
    "ObjectGone",
    "PagedListing",
    "S3Objects",
    "SourcePolicy",
    "Unlisted",
    "file_ref",
    "s3_ref",
]

log = logging.getLogger(__name__)

#: S3's bucket naming rules (lower case letters, digits, dots and hyphens; 3 to 63 characters).
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")


class ObjectGone(Exception):
    """The object was deleted after its event was sent; its delete event will follow or has come."""


@dataclass(frozen=True)
class Unlisted:
    """An entry met while listing that is not a readable file, and why.

    ``folder`` says that a whole folder could not be listed: nothing under ``source`` (a URI ending
    in ``/``) is known, so none of its documents may be taken as deleted.
    """

    source: str
    reason: str
    folder: bool = False


class BlobStore(Protocol):
    def read(self, ref: SourceRef, *, max_bytes: int) -> tuple[bytes, SourceRef]:
        """The object's bytes, and its ref completed with size, type and user metadata."""
        ...

    def list(self, root: str) -> Iterator[SourceRef | Unlisted]:
        """Every object under ``root`` (a folder path, or ``s3://bucket/prefix``), and what was
        met there but cannot be read (:class:`Unlisted`)."""
        ...

    def head(self, ref: SourceRef) -> SourceRef | None:
        """The object's current state (size, ETag), or None when the key has no live object."""
        ...


@runtime_checkable
class PagedListing(Protocol):
    """A store that lists one page at a time (S3), as the fanned-out reconcile reads a bucket."""

    def list_page(
        self, root: str, *, token: str | None = None, limit: int = 1000
    ) -> tuple[list[SourceRef], str | None]: ...


def file_ref(path: Path, root: Path | None = None) -> SourceRef:
    """The SourceRef of a local file: source ``file:///abs/path``, key relative to ``root``.

    The source percent-encodes the name's bytes, so a name that is not UTF-8 keeps an exact,
    reversible identity (:func:`path_of`); the key, for display, shows such bytes escaped.
    """
    path = path.resolve()
    st = path.stat()
    relative = path.relative_to(root.resolve()).as_posix() if root else path.name
    return SourceRef(
        source=path.as_uri(),
        key=os.fsencode(relative).decode("utf-8", "backslashreplace"),
        size=st.st_size,
        etag=f"{st.st_mtime_ns:x}-{st.st_size:x}",
        last_modified=datetime.fromtimestamp(st.st_mtime, UTC),
    )


_KINDS = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a folder",
}


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
    """Files on disk. Hidden files and folders (``.name``) are left out of listings.

    Listing never follows a symlink: one that stays inside the folder is left out (its target is
    listed in its own place); one that leaves the folder, loops or dangles is reported, as are
    FIFOs, devices and sockets, and folders that cannot be read. A file that vanishes while the
    folder is listed is simply not listed.
    """

    def read(self, ref: SourceRef, *, max_bytes: int) -> tuple[bytes, SourceRef]:
        path = path_of(ref.source)
        try:
            # O_NONBLOCK: a FIFO put in the file's place since the listing must not hang the read
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError:
            raise ObjectGone(ref.source) from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise Unreadable(f"{_shown(path)} is now a symlink: not followed") from None
            raise Unreadable(f"cannot read {_shown(path)}: {exc.strerror}") from None
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise Unreadable(f"{_shown(path)} is {_KINDS.get(stat.S_IFMT(st.st_mode), 'not a file')}")
            _check_size(st.st_size, max_bytes)
            try:
                data = f.read(max_bytes + 1)
            except OSError as exc:
                raise Unreadable(f"cannot read {_shown(path)}: {exc.strerror}") from None
        _check_size(len(data), max_bytes)  # it grew after the stat
        return data, ref

    def head(self, ref: SourceRef) -> SourceRef | None:
        path = path_of(ref.source)
        if not path.is_file():
            return None
        current = file_ref(path)
        return ref.model_copy(update={"size": current.size, "etag": current.etag})

    def list(self, root: str) -> Iterator[SourceRef | Unlisted]:
        base = Path(root).resolve()
        if base.is_file():
            yield file_ref(base, base.parent)
            return
        unreadable: list[OSError] = []
        for dirpath, dirnames, filenames in os.walk(base, onerror=unreadable.append):
            while unreadable:
                yield _unreadable_folder(unreadable.pop())
            folder = Path(dirpath)
            keep = []
            for name in sorted(d for d in dirnames if not d.startswith(".")):
                if (folder / name).is_symlink():
                    problem = _symlink_problem(folder / name, base)
                    if problem is not None:
                        yield problem
                else:
                    keep.append(name)
            dirnames[:] = keep
            for name in sorted(filenames):
                if name.startswith("."):
                    continue
                entry = _file_entry(folder / name, base)
                if entry is not None:
                    yield entry
        while unreadable:
            yield _unreadable_folder(unreadable.pop())


def _shown(path: Path) -> str:
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _file_entry(path: Path, base: Path) -> SourceRef | Unlisted | None:
    """The entry of one name in a listing: a file, a problem, or nothing (vanished, or a link inside)."""
    try:
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            return _symlink_problem(path, base)
        if not stat.S_ISREG(st.st_mode):
            kind = _KINDS.get(stat.S_IFMT(st.st_mode), "not a regular file")
            return Unlisted(path.as_uri(), f"not indexed: {kind}")
        return file_ref(path, base)
    except FileNotFoundError:  # deleted while the folder was listed: gone
        return None
    except OSError as exc:
        return Unlisted(path.as_uri(), f"cannot read {_shown(path)}: {exc.strerror}")


def _symlink_problem(link: Path, base: Path) -> Unlisted | None:
    """Why a symlink is not followed, or None when it points inside the folder (listed there)."""
    try:
        target = link.resolve(strict=True)
    except FileNotFoundError:
        return Unlisted(link.as_uri(), "not indexed: a dangling symlink")
    except (RuntimeError, OSError):  # a loop: RuntimeError on 3.11/3.12, OSError (ELOOP) on 3.13
        return Unlisted(link.as_uri(), "not indexed: a symlink loop")
    if target == base or base in target.parents:
        return None
    return Unlisted(link.as_uri(), f"not indexed: a symlink to {_shown(target)}, outside the folder")


def _unreadable_folder(exc: OSError) -> Unlisted:
    folder = Path(exc.filename) if exc.filename else Path("?")
    return Unlisted(
        folder.as_uri().rstrip("/") + "/",
        f"cannot list folder {_shown(folder)}: {exc.strerror}; its documents are left as they are",
        folder=True,
    )


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

    def list(self, root: str) -> Iterator[SourceRef | Unlisted]:
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
    return SourceRef(source=s3_source(bucket, key), bucket=bucket, key=key, **fields)


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

    def list(self, root: str) -> Iterator[SourceRef | Unlisted]:
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

    def list_page(
        self, root: str, *, token: str | None = None, limit: int = 1000
    ) -> tuple[list[SourceRef], str | None]:
        """One page of an ``s3://`` listing (see :meth:`S3Objects.list_page`)."""
        if not root.startswith("s3://"):
            raise RejectedSource("only an s3:// prefix is listed page by page")
        return self.s3.list_page(root, token=token, limit=limit)

    def list(self, root: str) -> Iterator[SourceRef | Unlisted]:
        return (self.s3 if root.startswith("s3://") else self.local).list(root)

    def head(self, ref: SourceRef) -> SourceRef | None:
        return (self.s3 if ref.bucket else self.local).head(ref)
