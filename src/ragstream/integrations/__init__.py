"""Retrievers for LangChain and LlamaIndex over ragstream's search, on any vector store.

``ragstream.integrations.langchain`` (extra ``langchain``) and ``ragstream.integrations.llamaindex``
(extra ``llamaindex``); neither is imported by ragstream itself nor installed in the Lambda images.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..config import Settings
    from ..index import SearchFilter
    from ..query import Retriever

__all__ = ["hit_metadata", "search"]


def search(
    retriever: Retriever, query: str, top_k: int | None, flt: SearchFilter | None
) -> list[tuple[str, str, float, dict[str, Any]]]:
    """``(id, text, score, metadata)`` of each hit of ragstream's search, best first."""
    return [(h.id, h.text, h.score, hit_metadata(h)) for h in retriever.search(query, top_k=top_k, flt=flt)]


def hit_metadata(hit: Any) -> dict[str, Any]:
    """A hit's metadata with its source, page, title and score, as the frameworks show them."""
    meta = {k: v for k, v in dict(hit.metadata).items() if v is not None and k != "folders"}
    meta.update(source=hit.source, score=round(hit.score, 6))
    if hit.page is not None:
        meta["page"] = hit.page
    if hit.title:
        meta["title"] = hit.title
    return meta


def build_retriever(settings: Settings) -> Retriever:
    """ragstream's retriever from the settings (the store RAGSTREAM_INDEX names, the embedder)."""
    from ..query import Retriever

    return Retriever.from_settings(settings)
