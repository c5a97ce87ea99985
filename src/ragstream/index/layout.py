"""The layout of a chunk in any store: its id, its metadata (built here once), and the two shapes a
store keeps it in: nested (LangChain's Qdrant layout, ``page_content`` + ``metadata``) or flat.

The pipeline, the tests and the benchmarks build metadata with :func:`chunk_metadata`; stores with
flat metadata (Chroma) keep :func:`flatten` of it and give back :func:`unflatten` of what they read;
stores with a schema (Milvus, Weaviate) keep :func:`filter_fields` of it beside it, and the stores
reads (source, version) with :func:`version_key`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

__all__ = [
    "NAMESPACE",
    "RESERVED",
    "chunk_metadata",
    "filter_fields",
    "flatten",
    "folder_depth",
    "folder_key",
    "folders_of",
    "point_id",
    "unflatten",
    "version_key",
]

#: Namespace of point ids: uuid5(NAMESPACE, f"{source}|{version}|{chunk_index}").
NAMESPACE = uuid.UUID("6f1c1a52-5d2e-4f8a-9a57-3c0b7e0e8d11")

#: Metadata keys of ours; user or extractor metadata of the same name does not override them.
RESERVED = frozenset(
    {
        "source",
        "bucket",
        "key",
        "version",
        "page",
        "chunk_index",
        "title",
        "content_type",
        "last_modified",
        "engine",
        "folders",
        "element_type",
    }
)

#: Flat layout: the folder of depth N (``s3://b/`` is 0, ``s3://b/a/`` is 1) under ``folder_N``.
FOLDER_KEY = "folder_"


def point_id(source: str, version: str, chunk_index: int) -> str:
    """The deterministic id of one chunk of one version of one source."""
    return str(uuid.uuid5(NAMESPACE, f"{source}|{version}|{chunk_index}"))


def folders_of(source: str) -> list[str]:
    """Every folder prefix of a source URI, for prefix filters: s3://b/a/c.pdf -> [s3://b/, s3://b/a/]."""
    scheme, sep, rest = source.partition("://")
    if not sep:
        return []
    parts = rest.split("/")[:-1]
    return [f"{scheme}://{'/'.join(parts[: i + 1])}/" for i in range(len(parts))]


def folder_depth(folder: str) -> int:
    """The depth of a folder prefix ending in '/': its index in :func:`folders_of` of a file inside it."""
    return len(folders_of(folder + "x")) - 1


def folder_key(folder: str) -> str:
    """The flat-layout key that holds folders of this one's depth."""
    return f"{FOLDER_KEY}{folder_depth(folder)}"


def chunk_metadata(
    *,
    source: str,
    version: str,
    chunk_index: int,
    bucket: str | None = None,
    key: str | None = None,
    content_type: str | None = None,
    engine: str | None = None,
    page: int | None = None,
    title: str | None = None,
    last_modified: datetime | str | None = None,
    extra: Mapping[str, Any] = (),  # type: ignore[assignment]
) -> dict[str, Any]:
    """The metadata of one chunk: ``extra`` (user metadata, then extractor and chunk metadata, in that
    order of precedence) under ragstream's own keys, which it never overrides."""
    meta: dict[str, Any] = {
        k: v for k, v in dict(extra).items() if k not in RESERVED and not _is_folder_key(k)
    }
    meta.update(
        source=source,
        bucket=bucket,
        key=key,
        version=version,
        content_type=content_type,
        engine=engine,
        last_modified=last_modified.isoformat() if isinstance(last_modified, datetime) else last_modified,
        folders=folders_of(source),
        page=page,
        chunk_index=chunk_index,
        title=title,
    )
    return meta


def version_key(metadata: Mapping[str, Any]) -> tuple[str, str]:
    """(source, version) of a chunk's metadata, as text: what replaces, deletes and tallies select by."""
    return str(metadata.get("source", "")), str(metadata.get("version", ""))


def filter_fields(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The fields a store with a schema (Milvus, Weaviate) keeps beside the metadata for its deletes and
    filters: ``source``, ``version`` and ``content_type`` as text (never null), ``folders`` as a list."""
    source, version = version_key(metadata)
    return {
        "source": source,
        "version": version,
        "content_type": str(metadata.get("content_type") or ""),
        "folders": [str(f) for f in metadata.get("folders") or ()],
    }


def flatten(metadata: Mapping[str, Any]) -> dict[str, str | int | float | bool]:
    """The metadata for a store with flat metadata: nulls dropped, ``folders`` as one key per depth
    (``folder_0``, ``folder_1``, ...) so that a folder filter is one equality, other lists and dicts as
    JSON text."""
    import json

    flat: dict[str, str | int | float | bool] = {}
    for key, value in metadata.items():
        if value is None:
            continue
        if key == "folders":
            for depth, folder in enumerate(value):
                flat[f"{FOLDER_KEY}{depth}"] = folder
        elif isinstance(value, str | int | float | bool):
            flat[key] = value
        else:
            flat[key] = json.dumps(value, sort_keys=True, default=str)
    return flat


def unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    """The metadata as written, from :func:`flatten` of it (nulls stay absent)."""
    meta = {k: v for k, v in flat.items() if not _is_folder_key(k)}
    depths = sorted(int(k[len(FOLDER_KEY) :]) for k in flat if _is_folder_key(k))
    if "source" in meta:
        meta["folders"] = [flat[f"{FOLDER_KEY}{d}"] for d in depths]
    return meta


def _is_folder_key(key: str) -> bool:
    return key.startswith(FOLDER_KEY) and key[len(FOLDER_KEY) :].isdigit()
