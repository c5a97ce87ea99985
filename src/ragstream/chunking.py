"""Elements -> chunks, token-bounded, each with its page, section title and document metadata.

LangChain's ``RecursiveCharacterTextSplitter`` does the splitting; its length function counts word
pieces of the embedding model's tokenizer, so a chunk never exceeds what the local model reads
(256 word pieces) and stays well inside OpenAI's limits.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from itertools import groupby

from .model import Chunk, Element

__all__ = ["chunk_elements"]

SEPARATOR = "\n\n"


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
                    metadata=dict(first.metadata),
                )
            )
    return chunks
