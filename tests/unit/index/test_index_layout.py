"""The one layout of a chunk's metadata, and its flat form for stores with flat metadata."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ragstream.index import chunk_metadata, folders_of, point_id
from ragstream.index.layout import flatten, folder_key, unflatten


def test_chunk_metadata_keeps_our_keys_over_user_metadata() -> None:
    meta = chunk_metadata(
        source="s3://b/reports/q3.pdf",
        version="v1",
        chunk_index=2,
        page=3,
        last_modified=datetime(2024, 5, 1, tzinfo=UTC),
        extra={"source": "spoofed", "folder_0": "s3://other/", "team": "finance"},
    )
    assert meta["source"] == "s3://b/reports/q3.pdf" and meta["team"] == "finance"
    assert meta["folders"] == ["s3://b/", "s3://b/reports/"] and "folder_0" not in meta
    assert meta["last_modified"] == "2024-05-01T00:00:00+00:00"
    assert point_id("s3://b/reports/q3.pdf", "v1", 2) == point_id("s3://b/reports/q3.pdf", "v1", 2)


def test_flat_metadata_has_one_key_per_folder_depth_and_no_nulls() -> None:
    meta = chunk_metadata(source="file:///data/docs/a/b.md", version="v1", chunk_index=0, extra={"tags": [1]})
    flat = flatten(meta)
    assert all(v is not None and not isinstance(v, list | dict) for v in flat.values())
    for folder in folders_of("file:///data/docs/a/b.md"):
        assert flat[folder_key(folder)] == folder
    assert unflatten(flat) == {k: v for k, v in meta.items() if v is not None} | {"tags": "[1]"}


def test_the_store_in_effect_and_its_identity_in_the_fingerprint(tmp_path: object) -> None:
    from pathlib import Path

    from ragstream.config import Settings

    home = Path(str(tmp_path))
    default = Settings(home=home)
    assert default.index_backend == "edge" and default.index_location == str(home / "edge")
    with pytest.deprecated_call():  # the old names: a Qdrant URL chooses qdrant, as it did
        assert Settings(home=home, qdrant_url="https://q.example:6333").index_backend == "qdrant"
    with pytest.deprecated_call():
        assert Settings(home=home, local_index="qdrant-local").index_backend == "qdrant"  # deprecated alias
    assert Settings(home=home, index="milvus").index_location == str(home / "milvus.db")
    assert Settings(home=home, index="chroma", index_url="http://127.0.0.1:8000").index_location.startswith(
        "http"
    )
    # the same documents in another store, URL, path or collection are not indexed there yet
    fingerprints = {
        Settings(home=home, **kwargs).fingerprint  # type: ignore[arg-type]
        for kwargs in (
            {},
            {"index": "faiss"},
            {"index": "qdrant"},
            {"index": "qdrant", "index_url": "https://q.example:6333"},
            {"index_path": home / "elsewhere"},
            {"collection": "other"},
        )
    }
    assert len(fingerprints) == 6
    assert Settings(home=home).fingerprint == Settings(home=home, index="edge").fingerprint
