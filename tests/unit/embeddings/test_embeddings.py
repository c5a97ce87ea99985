"""The local embedder against vectors of the original fp32 model, and offline behaviour."""

from __future__ import annotations

import json
import math
import os
import socket
import stat
from pathlib import Path
from typing import Any

import pytest

from ragstream import embeddings as emb
from ragstream.config import Settings
from ragstream.embeddings import (
    LOCAL_DIMENSION,
    LocalEmbeddings,
    build_embeddings,
    count_tokens,
)
from ragstream.errors import ConfigError

REFERENCE = json.loads((Path(__file__).parents[2] / "data" / "minilm_reference.json").read_text("utf-8"))
SENTENCES: list[str] = REFERENCE["sentences"]
VECTORS: list[list[float]] = REFERENCE["vectors"]


def _cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


@pytest.fixture(scope="module")
def local() -> LocalEmbeddings:
    return LocalEmbeddings()


def test_reference_covers_what_it_should() -> None:
    assert len(SENTENCES) == len(VECTORS) >= 8
    assert max(REFERENCE["word_pieces"]) > 256, "one sentence must exceed the model's window"


@pytest.mark.parametrize("index", range(len(SENTENCES)), ids=[s[:24] for s in SENTENCES])
def test_matches_the_original_model(local: LocalEmbeddings, index: int) -> None:
    # GIVEN a sentence and its vector from sentence-transformers (fp32, torch)
    # WHEN the int8 ONNX model embeds it
    ours = local.embed_documents([SENTENCES[index]])[0]
    # THEN both point the same way
    assert _cosine(ours, VECTORS[index]) >= 0.99


def test_shape_and_unit_length(local: LocalEmbeddings) -> None:
    vectors = local.embed_documents(SENTENCES)
    assert len(vectors) == len(SENTENCES)
    for vector in vectors:
        assert len(vector) == LOCAL_DIMENSION
        assert math.isclose(math.sqrt(sum(x * x for x in vector)), 1.0, abs_tol=1e-5)
    assert local.embed_documents([]) == []


def test_order_and_batching_do_not_change_vectors(local: LocalEmbeddings) -> None:
    texts = [*SENTENCES, *(f"{s} ({i})" for i, s in enumerate(SENTENCES))]
    expected = local.embed_documents(texts)
    small_batches = LocalEmbeddings(batch_size=3, max_batch_tokens=300)
    shuffled = list(reversed(range(len(texts))))
    got = small_batches.embed_documents([texts[i] for i in shuffled])
    for position, original in enumerate(shuffled):
        assert got[position] == pytest.approx(expected[original], abs=1e-5)


def test_embed_query_equals_embed_documents(local: LocalEmbeddings) -> None:
    batch = local.embed_documents(SENTENCES)
    for text, vector in zip(SENTENCES, batch, strict=True):
        assert local.embed_query(text) == pytest.approx(vector, abs=1e-5)


def test_text_past_the_window_is_truncated_like_the_reference(local: LocalEmbeddings) -> None:
    long_text = SENTENCES[2]
    assert count_tokens(long_text) > 256
    [full, with_tail] = local.embed_documents([long_text, long_text + " An extra tail that is cut off."])
    assert full == pytest.approx(with_tail, abs=1e-6)


def test_count_tokens() -> None:
    assert count_tokens("") == 0
    assert count_tokens("hello") == 1
    assert count_tokens("Hello, world!") == 4  # hello , world !  (no [CLS]/[SEP])
    assert count_tokens("unbelievably") > 1  # word pieces, not words
    assert [count_tokens(s) for s in SENTENCES] == REFERENCE["word_pieces"]


def test_build_embeddings_local_and_dimension(tmp_path: Path) -> None:
    settings = Settings(embedding_provider="local", home=tmp_path)
    embedder = build_embeddings(settings)
    assert isinstance(embedder, LocalEmbeddings)
    assert len(embedder.embed_query("x")) == LOCAL_DIMENSION


def test_missing_model_file_is_a_config_error(tmp_path: Path) -> None:
    settings = Settings(embedding_provider="local", local_model_path=tmp_path / "nope.onnx")
    with pytest.raises(ConfigError, match="RAGSTREAM_LOCAL_MODEL_PATH"):
        build_embeddings(settings)


def test_works_offline_with_a_read_only_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # GIVEN no network and a HOME (and caches) that cannot be written, and nothing built yet
    attempts: list[Any] = []

    def refuse(self: socket.socket, address: Any) -> None:
        attempts.append(address)
        raise OSError("network is blocked in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    home = tmp_path / "home"
    home.mkdir()
    for name in ("HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME", "HF_HOME"):
        monkeypatch.setenv(name, str(home))
    monkeypatch.setenv("TMPDIR", str(home))
    home.chmod(stat.S_IRUSR | stat.S_IXUSR)
    emb._tokenizer.cache_clear()
    try:
        # WHEN a fresh embedder loads its model and embeds
        vectors = LocalEmbeddings().embed_documents(["hello, world", SENTENCES[0]])
        tokens = count_tokens("hello, world")
    finally:
        home.chmod(stat.S_IRWXU)
    # THEN it worked, tried no connection and wrote nothing (root ignores the mode, so check)
    assert len(vectors) == 2 and _cosine(vectors[1], VECTORS[0]) >= 0.99
    assert tokens == 3
    assert attempts == []
    assert list(home.iterdir()) == []


def test_session_is_created_once_under_concurrency() -> None:
    from concurrent.futures import ThreadPoolExecutor

    embedder = LocalEmbeddings()
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(embedder.embed_query, SENTENCES[:4] * 2))
    session = embedder._session
    assert session is not None and embedder._get_session() is session
    assert results[0] == pytest.approx(results[4], abs=1e-6)
    assert embedder.threads == (os.cpu_count() or 1)


def test_a_chunk_size_beyond_the_local_window_is_refused_with_advice() -> None:
    from ragstream.config import Settings
    from ragstream.embeddings import build_embeddings
    from ragstream.errors import ConfigError

    with pytest.raises(ConfigError, match="exceeds the local model's 254-token window"):
        build_embeddings(Settings(embedding_provider="local", chunk_size=400, chunk_overlap=40))
