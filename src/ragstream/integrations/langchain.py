"""LangChain over ragstream: ``RagstreamRetriever``, a retriever over ragstream's search on any vector
store, and ``RagstreamEmbeddings``, ragstream's embedder as a LangChain ``Embeddings``.

    from ragstream.integrations.langchain import RagstreamRetriever
    retriever = RagstreamRetriever.from_settings(top_k=4, source_prefix="s3://docs/handbook/")
    chain = {"context": retriever, "question": RunnablePassthrough()} | prompt | llm

Each hit is a ``Document`` with the chunk's text and its metadata (source, page, title, score, ...).
Filters are those of ``POST /search``.

A LangChain vector store opened on ragstream's collection (``QdrantVectorStore``, ``PineconeVectorStore``)
must embed its queries as the chunks were embedded:

    from ragstream.integrations.langchain import RagstreamEmbeddings
    store = QdrantVectorStore(client=client, collection_name="ragstream", vector_name="dense",
                              embedding=RagstreamEmbeddings.from_settings())
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from ..index import SearchFilter
from . import build_retriever, search

if TYPE_CHECKING:
    from ..config import Settings
    from ..embeddings import Embedder

__all__ = ["RagstreamEmbeddings", "RagstreamRetriever"]


class RagstreamRetriever(BaseRetriever):
    """The chunks nearest to a query, as LangChain documents, filtered as ``POST /search`` filters."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    retriever: Any
    """A :class:`ragstream.query.Retriever` (its store, embedder and tracer)."""
    top_k: int | None = None
    """Documents per query; None: the settings' ``top_k``."""
    search_filter: SearchFilter | None = None
    """Source prefix, content type, user metadata and allowed prefixes, as ``POST /search`` takes them."""

    @classmethod
    def from_settings(
        cls,
        settings: Settings | None = None,
        *,
        top_k: int | None = None,
        search_filter: SearchFilter | None = None,
        **filter_fields: Any,
    ) -> RagstreamRetriever:
        """A retriever on the store the settings (default: the environment) point at; filter fields
        (``source_prefix=``, ``content_type=``, ``metadata=``, ``allowed_prefixes=``) may be given as
        keywords instead of ``search_filter``."""
        from ..config import get_settings

        if filter_fields:
            search_filter = SearchFilter(**filter_fields)
        return cls(
            retriever=build_retriever(settings or get_settings()), top_k=top_k, search_filter=search_filter
        )

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        return [
            Document(id=id_, page_content=text, metadata=meta)
            for id_, text, _, meta in search(self.retriever, query, self.top_k, self.search_filter)
        ]


class RagstreamEmbeddings(Embeddings):
    """A ragstream embedder (:class:`ragstream.embeddings.Embedder`) as a LangChain ``Embeddings``; the
    async methods are LangChain's (the sync ones in a worker thread)."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> RagstreamEmbeddings:
        """The embedder the settings (default: the environment) name: the one that embedded the index."""
        from ..config import get_settings
        from ..embeddings import build_embeddings

        return cls(build_embeddings(settings or get_settings()))

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embedder.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.embedder.embed_query(text)
