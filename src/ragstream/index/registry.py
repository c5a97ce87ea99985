"""Which store runs is one setting, ``RAGSTREAM_INDEX``; its module is imported only when chosen.

Each store module exposes ``from_settings(settings) -> VectorIndex``. A store added later (Weaviate,
Pinecone) is one more line in :data:`BACKENDS` and one module.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..config import Settings
    from .contract import VectorIndex

__all__ = ["BACKENDS", "IMAGE_CLIENTS", "open_index"]

#: RAGSTREAM_INDEX value -> (module under ragstream.index, the extra that installs its client).
BACKENDS: dict[str, tuple[str, str]] = {
    "edge": ("edge", "local"),
    "qdrant": ("qdrant", "query"),
    "faiss": ("faiss", "faiss"),
    "chroma": ("chroma", "chroma"),
    "milvus": ("milvus", "milvus"),
    "weaviate": ("weaviate", "weaviate"),
    "pinecone": ("pinecone", "pinecone"),
}

#: The server stores a Lambda image can be built for (template.yaml's VectorStore) -> the extra that
#: installs the store's thin client, its Dockerfile's STORE_CLIENTS (template.yaml's Mappings StoreClients).
IMAGE_CLIENTS: dict[str, str] = {
    "qdrant": "qdrant",
    "pinecone": "pinecone",
    "weaviate": "weaviate",
    "milvus": "milvus-client",
    "chroma": "chroma-client",
}


def open_index(settings: Settings) -> VectorIndex:
    """The index the settings point at (``settings.index_backend``), built by its store's module.

    Makes no network call and creates nothing on disk but the folder of an embedded store; within a
    process, every index opened on one embedded folder shares one handle.
    """
    name = settings.index_backend
    try:
        module_name, extra = BACKENDS[name]
    except KeyError:
        raise ConfigError(
            f"RAGSTREAM_INDEX={name!r} is not a known index; choose one of {', '.join(BACKENDS)}"
        ) from None
    module = importlib.import_module(f"{__package__}.{module_name}")
    try:
        return module.from_settings(settings)  # type: ignore[no-any-return]
    except ModuleNotFoundError as exc:
        if (exc.name or "").startswith("ragstream"):
            raise
        raise ConfigError(_missing_client(name, exc.name or "its client", extra)) from None


def _missing_client(name: str, module: str, extra: str) -> str:
    """What to do when the store's client is not installed: pip on a laptop; in a Lambda, whose image
    carries the client of the one store it was built for, the build that matches the deployed store."""
    message = f"RAGSTREAM_INDEX={name} needs {module}: pip install 'ragstream[{extra}]'"
    if not os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
        return message
    if name not in IMAGE_CLIENTS:
        return (
            f"{message}; no Lambda image carries {name} (an embedded store): the stack's VectorStore is one "
            f"of {', '.join(IMAGE_CLIENTS)}"
        )
    return (
        f"RAGSTREAM_INDEX={name} needs {module}, which this Lambda image does not carry: it was built for "
        f"another VectorStore (an image carries the client of its build's store alone, here "
        f"ragstream[{IMAGE_CLIENTS[name]}]). Build and deploy with the same store: "
        f"`sam build --parameter-overrides VectorStore={name}`, then `sam deploy` with VectorStore={name}"
    )
