"""Retrieve chunks for a question, and answer it from them with numbered citations.

Each request is one trace (see ``tracing.py``): ``embed-query``, ``retrieve`` (query, filter, hits
with source and score) and ``answer`` (a generation: model, prompt, completion, token usage, and
the Langfuse prompt version used), under a root named ``ask`` or ``search``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Any

from .index import Hit, LexicalQuery, SearchFilter, SparseVector, VectorIndex
from .model import LOCAL_EMBEDDING_MODEL, Answer, Citation, SearchHit
from .tracing import NO_SPAN, NOOP, ResolvedPrompt, Span, Tracer, to_template
from .untrusted import neutralise

if TYPE_CHECKING:
    from .access import Scope
    from .chat import ChatModel
    from .config import Settings
    from .embeddings import Embedder

__all__ = ["NO_ANSWER", "Retriever", "load_prompt"]

log = logging.getLogger(__name__)

#: What the chat model is told to say, verbatim, when the sources do not answer.
NO_ANSWER = "I cannot answer this from the indexed documents."
SNIPPET_CHARS = 300
#: A citation: [1], or several in one pair of brackets, [1, 3].
_CITE = re.compile(r"\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]")


def load_prompt(name: str = "answer") -> str:
    """A prompt shipped in the package (``ragstream/prompts/NAME.md``)."""
    return resources.files("ragstream.prompts").joinpath(f"{name}.md").read_text(encoding="utf-8")


@dataclass
class Retriever:
    """Search and answer over one collection. Build once per process; reuse for every request."""

    settings: Settings
    embedder: Embedder
    index: VectorIndex
    chat: ChatModel | None = None
    tracer: Tracer = field(default=NOOP)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        embedder: Embedder | None = None,
        index: VectorIndex | None = None,
        chat: ChatModel | None = None,
        tracer: Tracer | None = None,
    ) -> Retriever:
        from .embeddings import build_embeddings
        from .index import FirstUseIndex
        from .tracing import build_tracer

        if chat is None and settings.answerer == "openai":
            from .chat import build_chat_model

            chat = build_chat_model(settings)
        return cls(
            settings,
            embedder or build_embeddings(settings),
            index or FirstUseIndex(settings),  # the store's client is imported by the first search
            chat,
            tracer if tracer is not None else build_tracer(settings),
        )

    # -- search ---------------------------------------------------------------------------------------
    def search(
        self,
        query: str,
        *,
        top_k: int | None = None,
        flt: SearchFilter | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        scope: Scope | None = None,
    ) -> list[SearchHit]:
        """The chunks nearest to ``query`` within ``scope`` (None: everything), best first."""
        k = top_k or self.settings.top_k
        flt = scope.restrict(flt) if scope is not None else flt
        with self._trace("search", query, k, flt, user_id, session_id, scope) as trace:
            vector = self._embed_query(query, trace)
            hits = self._search(vector, k, flt, query=query, trace=trace, scope=scope)
            trace.update(output={"hits": len(hits)})
        return hits

    def _search(
        self,
        vector: list[float],
        top_k: int,
        flt: SearchFilter | None,
        *,
        query: str = "",
        trace: Span = NO_SPAN,
        scope: Scope | None = None,
    ) -> list[SearchHit]:
        with trace.child(
            "retrieve",
            as_type="retriever",
            input={"query": query, "top_k": top_k, "filter": _filter_json(flt)},
        ) as span:
            lexical = lexical_query(query) if self.settings.hybrid and query else None
            hits = [_hit(p) for p in self.index.search(vector, limit=top_k, flt=flt, lexical=lexical)]
            if scope is not None:  # the index filtered already; a hit out of scope is a store's bug
                strays = [h.source for h in hits if not scope.allows(h.source)]
                if strays:
                    log.error("the index returned %d hit(s) outside the caller's scope; dropped", len(strays))
                    hits = [h for h in hits if scope.allows(h.source)]
            span.update(
                output=[
                    {
                        "source": h.source,
                        "page": h.page,
                        "chunk_index": h.chunk_index,
                        "title": h.title,
                        "score": round(h.score, 4),
                    }
                    for h in hits
                ],
                metadata={
                    "hits": len(hits),
                    "collection": self.index.collection,
                    "retrieval": "hybrid" if lexical and self.index.capabilities.hybrid else "dense",
                },
            )
        return hits

    def _embed_query(self, text: str, trace: Span) -> list[float]:
        if not self.tracer.enabled:
            return self.embedder.embed_query(text)
        local = self.settings.embedder == "local"
        if local:
            from .embeddings import count_tokens

            tokens = count_tokens(text)
        else:  # OpenAI does not report embedding usage through langchain; the query image has no tokenizer
            tokens = max(1, len(text) // 4)
        with trace.child(
            "embed-query",
            as_type="embedding",
            model=LOCAL_EMBEDDING_MODEL if local else self.settings.embedding_model,
            usage_details={"input": tokens, "total": tokens},
            cost_details={"total": 0.0} if local else None,
            metadata={"embedding": self.settings.embedding_id, "tokens_approximate": not local},
        ):
            return self.embedder.embed_query(text)

    def _trace(
        self,
        name: str,
        text: str,
        top_k: int,
        flt: SearchFilter | None,
        user_id: str | None,
        session_id: str | None,
        scope: Scope | None = None,
    ) -> Span:
        return self.tracer.start_trace(
            name,
            input={
                "query" if name == "search" else "question": text,
                "top_k": top_k,
                "filter": _filter_json(flt),
            },
            tags=[name],
            metadata={
                "collection": self.index.collection,
                **({"principal": scope.principal} if scope is not None else {}),
            },
            user_id=user_id,
            session_id=session_id,
        )

    # -- answer ---------------------------------------------------------------------------------------
    def ask(
        self,
        question: str,
        *,
        top_k: int | None = None,
        flt: SearchFilter | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        scope: Scope | None = None,
    ) -> Answer:
        """An answer grounded in the chunks retrieved within ``scope``, citing them as [n];
        ``trace_id`` when traced."""
        k = top_k or self.settings.top_k
        flt = scope.restrict(flt) if scope is not None else flt
        with self._trace("ask", question, k, flt, user_id, session_id, scope) as trace:
            answer = self._ask(question, k, flt, trace, scope)
            trace.update(
                output={
                    "answer": answer.answer,
                    "grounded": answer.grounded,
                    "citations": [{"n": c.n, "source": c.source, "page": c.page} for c in answer.citations],
                }
            )
            trace.set_trace(
                tags=["grounded" if answer.grounded else "not-grounded"], metadata={"model": answer.model}
            )
        if trace.trace_id:
            answer = answer.model_copy(update={"trace_id": trace.trace_id})
        return answer

    def _ask(
        self, question: str, top_k: int, flt: SearchFilter | None, trace: Span, scope: Scope | None = None
    ) -> Answer:
        vector = self._embed_query(question, trace)
        hits = self._search(vector, top_k, flt, query=question, trace=trace, scope=scope)
        if not hits:
            return Answer(
                question=question, answer=NO_ANSWER, citations=[], grounded=False, model=self._model_name
            )
        if self.chat is None:
            with trace.child(
                "answer", input={"question": question}, metadata={"answerer": "extractive"}
            ) as span:
                answer = self._extractive(question, vector, hits)
                span.update(output=answer.answer)
            return answer
        return self._generate(question, hits, trace)

    def prompt(self) -> ResolvedPrompt:
        """The answer prompt: Langfuse's (``langfuse_prompt_name``) or the packaged one as fallback."""
        packaged = to_template(load_prompt("answer"), ("sources", "question"))
        name = self.settings.langfuse_prompt_name
        if not name:
            return ResolvedPrompt(template=packaged, name="answer")
        return self.tracer.prompt(name, fallback=packaged)

    @property
    def _model_name(self) -> str:
        return self.settings.chat_model if self.chat is not None else "extractive"

    def _generate(self, question: str, hits: list[SearchHit], trace: Span = NO_SPAN) -> Answer:
        from .embeddings import translate_openai_error

        resolved = self.prompt()
        prompt = resolved.compile(sources=format_sources(hits), question=neutralise(question))
        generation = trace.child(
            "answer",
            as_type="generation",
            model=self.settings.chat_model,
            model_parameters={"temperature": self.settings.chat_temperature},
            input=prompt,
            prompt=resolved.client,
            metadata={
                "prompt_name": resolved.name,
                "prompt_version": resolved.version,
                "prompt_source": resolved.source,
            },
        )
        with generation:
            try:
                reply = self.chat.complete(prompt)  # type: ignore[union-attr]
            except Exception as exc:
                raise translate_openai_error(exc) from None
            text = reply.content.strip()
            generation.update(output=text, usage_details=reply.usage, metadata=reply.metadata)
        if NO_ANSWER.rstrip(".").lower() in text.lower():
            return Answer(
                question=question, answer=NO_ANSWER, citations=[], grounded=False, model=self._model_name
            )
        cited = cited_numbers(text)
        valid = sorted(n for n in cited if 1 <= n <= len(hits))
        if len(valid) < len(cited):
            log.warning("the answer cites %s, but only %d sources were given", sorted(cited), len(hits))
        return Answer(
            question=question,
            answer=text,
            citations=[_citation(n, hits[n - 1]) for n in valid],
            # grounded: it cites, and every number it cites is a source it was given
            grounded=bool(cited) and len(valid) == len(cited),
            model=self._model_name,
        )

    def _extractive(self, question: str, qvec: list[float], hits: list[SearchHit]) -> Answer:
        """The sentences of the hits that hold the question's key terms, each cited; the no-answer
        sentence when none does (``extractive.py``). No language model involved."""
        from .extractive import supporting_sentences

        no_answer = NO_ANSWER.rstrip(".").lower()
        picked = supporting_sentences(
            question,
            qvec,
            hits,
            self.embedder.embed_documents,
            min_score=self.settings.min_answer_score,
            exclude=lambda sentence: no_answer in sentence.lower(),
        )
        if not picked:
            return Answer(
                question=question, answer=NO_ANSWER, citations=[], grounded=False, model="extractive"
            )
        numbering: dict[int, int] = {}
        quoted: dict[int, str] = {}  # the snippet of a citation is the sentence it supports
        parts = []
        for support in picked:
            n = numbering.setdefault(support.hit, len(numbering) + 1)
            quoted.setdefault(support.hit, support.sentence)
            parts.append(f"{support.sentence} [{n}]")
        citations = [_citation(n, hits[i], quoted[i]) for i, n in numbering.items()]
        return Answer(
            question=question, answer=" ".join(parts), citations=citations, grounded=True, model="extractive"
        )


def lexical_query(text: str) -> LexicalQuery | None:
    """The lexical side of a hybrid search for ``text`` (None when it has no index term)."""
    from .lexical import encode_query

    indices, values = encode_query(text)
    if not indices:
        return None
    return LexicalQuery(text=text, sparse=SparseVector(indices=indices, values=values))


def _filter_json(flt: SearchFilter | None) -> dict[str, Any] | None:
    return flt.model_dump(mode="json", exclude_none=True, exclude_defaults=True) if flt is not None else None


def cited_numbers(text: str) -> set[int]:
    """Every number an answer cites: [1], [2][3], [1, 3]."""
    return {int(n) for match in _CITE.finditer(text) for n in match.group(1).split(",")}


def format_sources(hits: list[SearchHit]) -> str:
    """The sources block of the prompt: each hit between ``<source n="k" ...>`` and ``</source>``.

    The text, title and name of a hit are untrusted: what could close a source, open another, forge a
    citation number, pass for chat markup or the no-answer sentence is neutralised (``untrusted.py``).
    """
    blocks = []
    for n, hit in enumerate(hits, start=1):
        attrs = f'n="{n}" from="{_attr(hit.source)}"'
        if hit.page:
            attrs += f' page="{hit.page}"'
        if hit.title:
            attrs += f' title="{_attr(hit.title)}"'
        text = neutralise(hit.text, sentences=(NO_ANSWER,))
        blocks.append(f"<source {attrs}>\n{text}\n</source>")
    return "\n\n".join(blocks)


def _attr(value: str) -> str:
    """A value for a source's attribute: one line, no quote, neutralised."""
    from .printable import printable

    one_line = printable(" ".join(value.split()))
    return neutralise(one_line, sentences=(NO_ANSWER,)).replace('"', "'").replace(">", "›").replace("<", "‹")


def _citation(n: int, hit: SearchHit, quote: str | None = None) -> Citation:
    snippet = " ".join((quote or hit.text).split())
    if len(snippet) > SNIPPET_CHARS:
        snippet = snippet[: SNIPPET_CHARS - 1].rsplit(" ", 1)[0] + "…"
    return Citation(
        n=n, source=hit.source, page=hit.page, title=hit.title, snippet=snippet, score=round(hit.score, 4)
    )


def _hit(hit: Hit) -> SearchHit:
    meta = hit.metadata
    return SearchHit(
        id=hit.id,
        text=hit.text,
        score=hit.score,
        source=hit.source,
        page=meta.get("page"),
        title=meta.get("title"),
        chunk_index=meta.get("chunk_index"),
        metadata=meta,
    )
