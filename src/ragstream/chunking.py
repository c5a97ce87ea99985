"""Elements -> chunks, token-bounded, each with its page, section title and document metadata.

LangChain's ``RecursiveCharacterTextSplitter`` does the splitting; its length function counts word
pieces of the embedding model's tokenizer, so a chunk never exceeds what the local model reads
(256 word pieces) and stays well inside OpenAI's limits.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Collection, Sequence
from itertools import groupby
from typing import Any

from .model import Chunk, Element

__all__ = ["chunk_elements", "document_title", "embedded_text"]

SEPARATOR = "\n\n"
#: Characters of document context (title, section) before a chunk's text, at most each.
CONTEXT_CHARS = 160
#: Document-level metadata that names a document, best first (pdf_text and unstructured set them).
_TITLE_KEYS = ("pdf_title", "title", "subject")
_NAME_SEPARATORS = re.compile(r"[_\-.+]+|%20")


def document_title(name: str, metadata: dict[str, Any], elements: Sequence[Element] = ()) -> str | None:
    """What names a document: its own title (PDF metadata, an email's subject, a heading that opens
    it), else its file name cleaned of extension and separators when that has a letter; None if
    nothing names it."""
    for key in _TITLE_KEYS:
        value = metadata.get(key)
        if isinstance(value, str) and value.strip():
            return _clip(value)
    first = next((e for e in elements if e.text.strip()), None)
    if first is not None and first.type == "Title" and (first.page or 1) == 1:
        return _clip(first.text)
    stem = name.rsplit("/", 1)[-1]
    if "." in stem.strip("."):
        stem = stem.rsplit(".", 1)[0]
    cleaned = " ".join(_NAME_SEPARATORS.sub(" ", stem).split())
    return _clip(cleaned) if any(c.isalpha() for c in cleaned) else None


def embedded_text(chunk: Chunk, title: str | None, parts: Collection[str]) -> str:
    """The text a chunk is embedded (dense and sparse) from: the document context named in ``parts``
    (``title``, ``section``: the path of headings it lies under, ``page``) on one line, then the
    chunk's own text.

    A title or heading that opens the chunk's text already, or a heading that repeats the title, is
    left out.
    """
    context: list[str] = []
    if "title" in parts and title and not chunk.text.startswith(title):
        context.append(title)
    if "section" in parts:
        headings = chunk.headings or ([chunk.title] if chunk.title else [])
        path = [_clip(h) for h in headings]
        path = [h for h in path if h and h != title]
        if path and chunk.text.startswith(path[-1]):
            path.pop()  # the chunk opens with its own heading
        context.extend(path)
    if "page" in parts and chunk.page:
        context.append(f"page {chunk.page}")
    if not context:
        return chunk.text
    return " › ".join(context) + "\n\n" + chunk.text


def _clip(text: str) -> str:
    one_line = " ".join(text.split())
    if len(one_line) <= CONTEXT_CHARS:
        return one_line
    return one_line[:CONTEXT_CHARS].rsplit(" ", 1)[0]


def chunk_elements(
    elements: Sequence[Element],
    *,
    chunk_size: int,
    chunk_overlap: int,
    length: Callable[[str], int],
) -> list[Chunk]:
    """Split the elements of one document into chunks that never cross a page boundary.

    Consecutive elements of one page are joined and split together, so short elements (list items,
    table cells, slide bullets) share a chunk. Each chunk takes the section title in force where it
    starts, and the element metadata of its first element.
    """
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(
        chunk_size=chunk_size,
        chunk_overlap=chunk_overlap,
        length_function=length,
        separators=["\n\n", "\n", ". ", "; ", ", ", " ", ""],
        keep_separator="end",
    )
    chunks: list[Chunk] = []
    for page, group in groupby((e for e in elements if e.text.strip()), key=lambda e: e.page):
        members = list(group)
        starts: list[int] = []
        offset = 0
        for element in members:
            starts.append(offset)
            offset += len(element.text) + len(SEPARATOR)
        text = SEPARATOR.join(e.text for e in members)
        pieces = [p.strip() for p in splitter.split_text(text)]
        cursor = 0
        for i, content in enumerate(pieces):
            if not content:
                continue
            found = text.find(content, cursor)
            start = found if found >= 0 else cursor
            cursor = start + 1
            at = max(0, bisect.bisect_right(starts, start) - 1)
            first = members[at]
            if first.type == "Title" and content == first.text.strip():
                nxt = pieces[i + 1] if i + 1 < len(pieces) else ""
                if nxt and at + 1 < len(members) and members[at + 1].title == content:
                    continue  # a heading on its own: the chunks after it carry it as their title
            title = first.text.strip()[:300] if first.type == "Title" and start == starts[at] else first.title
            chunks.append(
                Chunk(
                    text=content,
                    index=len(chunks),
                    tokens=length(content),
                    page=page,
                    title=title,
                    headings=list(first.headings),
                    metadata=dict(first.metadata),
                )
            )
    return chunks
