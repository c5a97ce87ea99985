"""``RagstreamRetriever``: a LlamaIndex retriever over ragstream's search, on any vector store.

    from llama_index.core.query_engine import RetrieverQueryEngine
    from ragstream.integrations.llamaindex import RagstreamRetriever
    engine = RetrieverQueryEngine.from_args(RagstreamRetriever.from_settings(top_k=4), llm=llm)

Each hit is a ``NodeWithScore`` over a ``TextNode`` with the chunk's id, text and metadata. Filters
are those of ``POST /search``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from ..index import SearchFilter
from . import build_retriever, search

if TYPE_CHECKING:
    from ..config import Settings
    from ..query import Retriever

__all__ = ["RagstreamRetriever"]


class RagstreamRetriever(BaseRetriever):
    """The chunks nearest to a query as LlamaIndex nodes, filtered as ``POST /search`` filters."""

    def __init__(
        self, retriever: Retriever, *, top_k: int | None = None, search_filter: SearchFilter | None = None
    ) -> None:
        self.retriever = retriever
        self.top_k = top_k
        self.search_filter = search_filter
        super().__init__()

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
        may be given as keywords instead of ``search_filter``."""
        from ..config import get_settings

        if filter_fields:
            search_filter = SearchFilter(**filter_fields)
        return cls(build_retriever(settings or get_settings()), top_k=top_k, search_filter=search_filter)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return [
            NodeWithScore(node=TextNode(id_=id_, text=text, metadata=meta), score=score)
            for id_, text, score, meta in search(
                self.retriever, query_bundle.query_str, self.top_k, self.search_filter
            )
        ]
