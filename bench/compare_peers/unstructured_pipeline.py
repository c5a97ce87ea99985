"""unstructured-ingest's pipeline for ``bench/compare.py`` (runs in its own venv).

Local source, local partitioning (strategy "fast": no layout model; spaCy's model replaced by
ragstream's offline stand-in, since unstructured would download it from GitHub), chunking by title (800
characters, 120 overlap), the same local MiniLM embedder as ragstream (plugged in as an
unstructured-ingest encoder), the Qdrant destination on disk (qdrant-client's local mode). Its work
folder persists between runs, so an unchanged re-run can reuse what it cached.

    python unstructured_pipeline.py CORPUS_DIR STORE_DIR WORK_DIR   # prints one JSON line
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def main() -> None:
    corpus, store, work = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    from qdrant_client import QdrantClient, models
    from unstructured_ingest.embed.interfaces import BaseEmbeddingEncoder, EmbeddingConfig
    from unstructured_ingest.interfaces import ProcessorConfig
    from unstructured_ingest.pipeline.pipeline import Pipeline, PipelineError
    from unstructured_ingest.processes.chunker import ChunkerConfig
    from unstructured_ingest.processes.connectors.local import (
        LocalConnectionConfig,
        LocalDownloaderConfig,
        LocalIndexerConfig,
    )
    from unstructured_ingest.processes.connectors.qdrant.local import (
        LocalQdrantConnectionConfig,
        LocalQdrantUploaderConfig,
        LocalQdrantUploadStagerConfig,
    )
    from unstructured_ingest.processes.embedder import EmbedderConfig
    from unstructured_ingest.processes.partitioner import PartitionerConfig

    from ragstream.embeddings import LocalEmbeddings  # the same embedder (installed without deps)
    from ragstream.extract.unstructured import _install_offline_nlp

    # unstructured downloads spaCy's en_core_web_sm from GitHub on first use (it is not on PyPI):
    # offline that fails every text document. It gets what ragstream's own extractor uses instead.
    _install_offline_nlp()
    logging.getLogger("unstructured_ingest").setLevel(logging.ERROR)
    embedder = LocalEmbeddings()

    @dataclass
    class MiniLMEncoder(BaseEmbeddingEncoder):
        def get_client(self) -> Any:
            return embedder

        def embed_batch(self, client: Any, batch: list[str]) -> list[list[float]]:
            return client.embed_documents(batch)

        def embed_query(self, query: str) -> list[float]:
            return embedder.embed_query(query)

    EmbedderConfig.get_embedder = lambda self: MiniLMEncoder(config=EmbeddingConfig(batch_size=64))

    client = QdrantClient(path=str(store))  # the destination wants its collection made beforehand
    if not client.collection_exists("corpus"):
        client.create_collection("corpus", models.VectorParams(size=384, distance=models.Distance.COSINE))
    client.close()

    files = sorted(p for p in corpus.iterdir() if p.is_file() and p.name != "SOURCES.md")
    pipeline = Pipeline.from_configs(
        context=ProcessorConfig(work_dir=str(work), num_processes=1, raise_on_error=False),
        indexer_config=LocalIndexerConfig(input_path=str(corpus)),
        downloader_config=LocalDownloaderConfig(),
        source_connection_config=LocalConnectionConfig(),
        partitioner_config=PartitionerConfig(strategy="fast"),
        chunker_config=ChunkerConfig(
            chunking_strategy="by_title", chunk_max_characters=800, chunk_overlap=120
        ),
        embedder_config=EmbedderConfig(embedding_provider="huggingface"),
        destination_connection_config=LocalQdrantConnectionConfig(path=str(store)),
        stager_config=LocalQdrantUploadStagerConfig(),
        uploader_config=LocalQdrantUploaderConfig(collection_name="corpus"),
    )
    with contextlib.suppress(PipelineError):  # raised at the end when any document failed
        pipeline.run()

    client = QdrantClient(path=str(store))
    points, offset, indexed = 0, None, set()
    while True:
        batch, offset = client.scroll("corpus", limit=1000, offset=offset, with_payload=True)
        points += len(batch)
        indexed.update((point.payload or {}).get("metadata-filename") for point in batch)
        if offset is None:
            break
    client.close()
    failures = {p.name: "not indexed" for p in files if p.name not in indexed}
    print(json.dumps({"files": len(files), "chunks": points, "failures": failures}))


if __name__ == "__main__":
    main()
