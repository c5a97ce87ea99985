"""Retrieve chunks for a question, and answer it from them with numbered citations."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

import numpy as np

from .index import QdrantIndex, SearchFilter
from .model import Answer, Citation, SearchHit

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings
    from langchain_core.language_models import BaseChatModel

    from .config import Settings

__all__ = ["NO_ANSWER", "Retriever", "load_prompt"]

#: What the chat model is told to say, verbatim, when the sources do not answer.
NO_ANSWER = "I cannot answer this from the indexed documents."
SNIPPET_CHARS = 300
#: Extractive answers: sentences shorter than this are not candidates.
MIN_SENTENCE_WORDS = 5
#: Extractive answers: at most this many sentences, each within this margin of the best one.
MAX_SENTENCES = 3
SENTENCE_MARGIN = 0.12
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n{1,}")
_CITE = re.compile(r"\[(\d{1,3})\]")


def load_prompt(name: str = "answer") -> str:
    """A prompt shipped in the package (``ragstream/prompts/NAME.md``)."""
    return resources.files("ragstream.prompts").joinpath(f"{name}.md").read_text(encoding="utf-8")


def build_chat_model(settings: Settings) -> BaseChatModel:
    """``ChatOpenAI`` from the settings (retries on 429 / 5xx are langchain-openai's own)."""
    from langchain_openai import ChatOpenAI

    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    return ChatOpenAI(
        model=settings.chat_model,
        temperature=settings.chat_temperature,
        api_key=key,  # type: ignore[arg-type]
        base_url=settings.openai_base_url,
        max_retries=settings.openai_max_retries,
        timeout=settings.openai_timeout,
    )


@dataclass
class Retriever:
    """Search and answer over one collection. Build once per process; reuse for every request."""

    settings: Settings
    embedder: Embeddings
    index: QdrantIndex
    chat: BaseChatModel | None = None

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        embedder: Embeddings | None = None,
        index: QdrantIndex | None = None,
        chat: BaseChatModel | None = None,
    ) -> Retriever:
        from .embeddings import build_embeddings
        from .index import open_index

        if chat is None and settings.answerer == "openai":
            chat = build_chat_model(settings)
        return cls(settings, embedder or build_embeddings(settings), index or open_index(settings), chat)

    # -- search ---------------------------------------------------------------------------------------
    def search(
        self, query: str, *, top_k: int | None = None, flt: SearchFilter | None = None
    ) -> list[SearchHit]:
        """The chunks nearest to ``query``, best first."""
        vector = self.embedder.embed_query(query)
        return self._search(vector, top_k or self.settings.top_k, flt)

    def _search(self, vector: list[float], top_k: int, flt: SearchFilter | None) -> list[SearchHit]:
        return [_hit(p) for p in self.index.search(vector, limit=top_k, flt=flt)]

    # -- answer ---------------------------------------------------------------------------------------
    def ask(self, question: str, *, top_k: int | None = None, flt: SearchFilter | None = None) -> Answer:
        """An answer grounded in the retrieved chunks, citing them as [n]."""
        vector = self.embedder.embed_query(question)
        hits = self._search(vector, top_k or self.settings.top_k, flt)
        if not hits:
            return Answer(
                question=question, answer=NO_ANSWER, citations=[], grounded=False, model=self._model_name
            )
        if self.chat is None:
            return self._extractive(question, vector, hits)
        return self._generate(question, hits)

    @property
    def _model_name(self) -> str:
        return self.settings.chat_model if self.chat is not None else "extractive"

    def _generate(self, question: str, hits: list[SearchHit]) -> Answer:
        from .embeddings import translate_openai_error

        prompt = load_prompt("answer").format(sources=format_sources(hits), question=question)
        try:
            reply = self.chat.invoke(prompt)  # type: ignore[union-attr]
        except Exception as exc:
            raise translate_openai_error(exc) from None
        text = str(reply.content).strip()
        if NO_ANSWER.rstrip(".").lower() in text.lower():
            return Answer(
                question=question, answer=NO_ANSWER, citations=[], grounded=False, model=self._model_name
            )
        numbers: list[int] = []
        for match in _CITE.finditer(text):
            n = int(match.group(1))
            if 1 <= n <= len(hits) and n not in numbers:
                numbers.append(n)
        citations = [_citation(n, hits[n - 1]) for n in sorted(numbers)]
        return Answer(
            question=question,
            answer=text,
            citations=citations,
            grounded=bool(citations),
            model=self._model_name,
        )

    def _extractive(self, question: str, qvec: list[float], hits: list[SearchHit]) -> Answer:
        """The best supporting sentences of the hits, each cited; no language model involved."""
        candidates: list[tuple[int, str]] = []
        for i, hit in enumerate(hits):
            for sentence in _SENTENCE.split(hit.text):
                sentence = " ".join(sentence.split())
                if len(sentence.split()) >= MIN_SENTENCE_WORDS:  # headings and fragments answer nothing
                    candidates.append((i, sentence[:600]))
        if not candidates:
            return Answer(
                question=question, answer=NO_ANSWER, citations=[], grounded=False, model="extractive"
            )
        vectors = np.asarray(self.embedder.embed_documents([s for _, s in candidates]), dtype=np.float32)
        q = np.asarray(qvec, dtype=np.float32)
        scores = vectors @ q / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(q) + 1e-9)
        order = np.argsort(-scores)
        best = float(scores[order[0]])
        if best < self.settings.min_answer_score:
            return Answer(
                question=question, answer=NO_ANSWER, citations=[], grounded=False, model="extractive"
            )
        floor = max(self.settings.min_answer_score, best - SENTENCE_MARGIN)
        picked: list[int] = []
        for j in order[: MAX_SENTENCES * 4]:
            if scores[j] < floor or len(picked) == MAX_SENTENCES:
                break
            if all(candidates[j][1] != candidates[k][1] for k in picked):
                picked.append(int(j))
        numbering: dict[int, int] = {}
        parts = []
        for j in picked:
            hit_index, sentence = candidates[j]
            n = numbering.setdefault(hit_index, len(numbering) + 1)
            parts.append(f"{sentence} [{n}]")
        citations = [_citation(n, hits[i]) for i, n in numbering.items()]
        return Answer(
            question=question, answer=" ".join(parts), citations=citations, grounded=True, model="extractive"
        )


def format_sources(hits: list[SearchHit]) -> str:
    """The numbered sources block of the prompt."""
    blocks = []
    for n, hit in enumerate(hits, start=1):
        where = hit.source + (f", page {hit.page}" if hit.page else "")
        title = f" — {hit.title}" if hit.title else ""
        blocks.append(f"[{n}] ({where}{title})\n{hit.text}")
    return "\n\n".join(blocks)


def _citation(n: int, hit: SearchHit) -> Citation:
    snippet = " ".join(hit.text.split())
    if len(snippet) > SNIPPET_CHARS:
        snippet = snippet[: SNIPPET_CHARS - 1].rsplit(" ", 1)[0] + "…"
    return Citation(
        n=n, source=hit.source, page=hit.page, title=hit.title, snippet=snippet, score=round(hit.score, 4)
    )


def _hit(point: Any) -> SearchHit:
    payload = point.payload or {}
    meta = dict(payload.get("metadata") or {})
    return SearchHit(
        id=str(point.id),
        text=payload.get("page_content", ""),
        score=float(point.score),
        source=meta.get("source", ""),
        page=meta.get("page"),
        title=meta.get("title"),
        chunk_index=meta.get("chunk_index"),
        metadata=meta,
    )
