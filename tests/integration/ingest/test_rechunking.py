"""A chunking setting changed: the same bytes are chunked again, and the index holds exactly the new
chunks. Points are named by (source, version, chunk index): without care the new, fewer chunks
overwrite the first old points and the rest stay, answering with the old chunks' text for good."""

from __future__ import annotations

from pathlib import Path

from ragstream.config import Settings
from ragstream.ingest import Pipeline

PARAGRAPH = (
    "The travel policy sets the hotel limit per night by city, and the approval needed before booking "
    "depends on the trip's length and the traveller's grade; receipts are kept for seven years. "
)


def _ingest(home: Path, docs: Path, chunk_size: int) -> tuple[int, int, set[str]]:
    settings = Settings(
        home=home,
        embedding_provider="local",
        llm="extractive",
        chunk_size=chunk_size,
        extract_isolation="none",
    )
    pipeline = Pipeline.from_settings(settings)
    try:
        [outcome] = pipeline.sync(str(docs))
        assert outcome.status == "indexed", outcome
        record = pipeline.ledger.get(outcome.source)
        assert record is not None
        texts = {hit.text for hit in pipeline.index.search([1.0] + [0.0] * 383, limit=500)}
        return record.chunks, pipeline.index.count(outcome.source), texts
    finally:
        pipeline.index.close()


def test_fewer_chunks_after_a_settings_change_leave_no_old_points(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "policy.md").write_text(
        "# Travel\n\n" + "\n\n".join(f"Rule {i}. " + PARAGRAPH * 2 for i in range(12)) + "\n"
    )
    home = tmp_path / "home"
    small, small_points, _ = _ingest(home, docs, chunk_size=64)
    assert small_points == small > 12
    # WHEN the same file is ingested again with chunks four times as large
    large, large_points, texts = _ingest(home, docs, chunk_size=250)
    # THEN the index holds the new chunks, and none of the old ones
    assert large < small
    assert large_points == large
    assert len(texts) == large


def test_reconcile_removes_points_an_earlier_chunking_left(tmp_path: Path) -> None:
    # GIVEN an index that an earlier ragstream left with points of an earlier chunking (more points
    # of the indexed version than the ledger's chunks), written here as that release wrote them
    from ragstream.index import Point, chunk_metadata, point_id

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "policy.md").write_text("# Travel\n\n" + PARAGRAPH + "\n")
    settings = Settings(
        home=tmp_path / "home", embedding_provider="local", llm="extractive", extract_isolation="none"
    )
    pipeline = Pipeline.from_settings(settings)
    try:
        [outcome] = pipeline.sync(str(docs))
        record = pipeline.ledger.get(outcome.source)
        assert record is not None and record.version is not None and record.chunks == 1
        old = [
            Point(
                id=point_id(outcome.source, record.version, i),
                vector=[0.0, 1.0] + [0.0] * 382,
                text=f"old chunk {i}",
                metadata=chunk_metadata(
                    source=outcome.source, version=record.version, chunk_index=i, bucket=None,
                    key="policy.md",
                    content_type="text/markdown", engine="unstructured", page=None, title="Travel",
                    last_modified=None, extra={},
                ),
            )
            for i in range(1, 4)
        ]  # fmt: skip
        pipeline.index.upsert(old)
        assert pipeline.index.count(outcome.source) == 4
        # WHEN the folder is reconciled
        outcomes = pipeline.sync(str(docs), repair=True)
        # THEN the extra points are gone, the document is whole again, and the run says what it did
        assert [o.status for o in outcomes] == ["repaired", "indexed"], outcomes
        assert "3 points of an earlier chunking" in (outcomes[0].reason or "")
        assert pipeline.index.count(outcome.source) == 1
        hits = pipeline.index.search([0.0, 1.0] + [0.0] * 382, limit=10)
        assert [h.text for h in hits if h.text.startswith("old chunk")] == []
    finally:
        pipeline.index.close()
