"""The plain LangChain pipeline a user would write, for ``bench/compare.py`` (runs in its own venv).

A loader per file type (PyPDFLoader, Docx2txtLoader, BSHTMLLoader, CSVLoader, TextLoader; no
loader: a failure), RecursiveCharacterTextSplitter (800 characters, 120 overlap: about ragstream's
200 tokens), QdrantVectorStore on disk (qdrant-client's local mode), the same local MiniLM embedder
as ragstream. It keeps no state between runs: an unchanged re-run does it all again.

    python langchain_pipeline.py CORPUS_DIR STORE_DIR   # prints one JSON line
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> None:
    corpus, store = Path(sys.argv[1]), Path(sys.argv[2])
    from langchain_community.document_loaders import (
        BSHTMLLoader,
        CSVLoader,
        Docx2txtLoader,
        PyPDFLoader,
        TextLoader,
    )
    from langchain_qdrant import QdrantVectorStore
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    from ragstream.embeddings import LocalEmbeddings  # the same embedder (installed without deps)
    from ragstream.integrations.langchain import RagstreamEmbeddings

    loaders = {
        ".pdf": PyPDFLoader,
        ".docx": Docx2txtLoader,
        ".html": BSHTMLLoader,
        ".csv": CSVLoader,
        ".txt": TextLoader,
        ".md": TextLoader,
    }
    splitter = RecursiveCharacterTextSplitter(chunk_size=800, chunk_overlap=120)
    files = sorted(p for p in corpus.iterdir() if p.is_file() and p.name != "SOURCES.md")
    chunks, failures = [], {}
    for path in files:
        loader = loaders.get(path.suffix.lower())
        if loader is None:
            failures[path.name] = "no loader"
            continue
        try:
            kwargs = {"autodetect_encoding": True} if loader in (TextLoader, CSVLoader) else {}
            docs = splitter.split_documents(loader(str(path), **kwargs).load())
        except Exception as exc:  # what a user's loop would do: note it and go on
            failures[path.name] = type(exc).__name__
            continue
        docs = [d for d in docs if d.page_content.strip()]
        if not docs:
            failures[path.name] = "no text"
        chunks += docs
    QdrantVectorStore.from_documents(
        chunks,
        RagstreamEmbeddings(LocalEmbeddings()),
        path=str(store),
        collection_name="corpus",
        force_recreate=True,
    )
    print(json.dumps({"files": len(files), "chunks": len(chunks), "failures": failures}))


if __name__ == "__main__":
    main()
