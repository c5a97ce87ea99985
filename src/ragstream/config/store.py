"""The vector store: which one, where it is, and each store's own options (side by side, by store)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr

#: The vector stores ``RAGSTREAM_INDEX`` names (``ragstream.index.registry.BACKENDS``).
IndexName = Literal["edge", "qdrant", "faiss", "chroma", "milvus", "weaviate", "pinecone"]


class StoreSettings(BaseModel):
    """The vector store.

    Which store holds the points, where it is, its collection. The options of one store carry its name
    and stand together, after the common ones.
    """

    collection: str = Field(
        default="ragstream",
        description="Collection name in the vector store (Qdrant, Chroma, Milvus, FAISS).",
    )
    index: IndexName | None = Field(
        default=None,
        description="The vector store: edge (Qdrant Edge, embedded), qdrant (Qdrant Cloud / a server by "
        "RAGSTREAM_INDEX_URL, else qdrant-client's local mode), faiss (embedded), chroma (embedded, or a "
        "server / Chroma Cloud by RAGSTREAM_INDEX_URL), milvus (Milvus Lite, or a server / Zilliz Cloud by "
        "RAGSTREAM_INDEX_URL), weaviate (a server / Weaviate Cloud by RAGSTREAM_INDEX_URL), pinecone "
        "(Pinecone serverless by RAGSTREAM_INDEX_API_KEY). Unset: edge (qdrant when the deprecated "
        "RAGSTREAM_QDRANT_URL is set).",
    )
    index_path: Path | None = Field(
        default=None,
        description="Folder (file for Milvus Lite) of an embedded store; ':memory:' for an in-memory Qdrant. "
        "Default: home/<store> (home/milvus.db).",
    )
    index_url: str | None = Field(
        default=None,
        description="Server or cloud URL of chroma, milvus (Zilliz Cloud), weaviate (Weaviate Cloud) or "
        "qdrant (Qdrant Cloud, a Qdrant server). Unset: embedded. For pinecone: another control-plane host "
        "(unset: Pinecone's public API).",
    )
    index_api_key: SecretStr | None = Field(
        default=None,
        description="Token of that server: Qdrant Cloud, Chroma Cloud API key, Milvus 'user:password', "
        "Zilliz, Weaviate or Pinecone API key.",
    )
    # -- Qdrant (qdrant, edge) ------------------------------------------------------------------------------
    qdrant_timeout: int = Field(default=30, ge=1, description="Seconds per Qdrant request.")
    upsert_batch_size: int = Field(default=256, ge=1, le=10_000, description="Points per Qdrant upsert.")
    # -- Weaviate --------------------------------------------------------------------------------------------
    weaviate_grpc_url: str | None = Field(
        default=None,
        description="Weaviate's gRPC host:port. Unset: the REST URL's host on 50051 (http), "
        "grpc-<host>:443 (https, Weaviate Cloud).",
    )
    # -- Chroma ----------------------------------------------------------------------------------------------
    chroma_tenant: str | None = Field(default=None, description="Chroma Cloud tenant.")
    chroma_database: str | None = Field(default=None, description="Chroma Cloud database.")
    # -- Pinecone --------------------------------------------------------------------------------------------
    pinecone_cloud: str = Field(default="aws", description="Cloud of a new Pinecone serverless index.")
    pinecone_region: str = Field(
        default="us-east-1", description="Region of a new Pinecone serverless index."
    )
    pinecone_namespace: str = Field(
        default="", description="Pinecone namespace of the points (empty: the default namespace)."
    )
