"""One Settings object, read from the environment (prefix ``RAGSTREAM_``). Only this package reads it.

``Settings`` is composed of groups, one module each (the store, state and the bucket, chunks and
embeddings, OpenAI, answers, extraction, the API, tracing, secrets from AWS): a group is a plain pydantic
model holding fields alone, so a reader finds a setting by its topic and the reference
(``docs/configuration.md``, made by ``python -m ragstream.config``) gets one table per group. What
needs more than one group (the checks, the derived values) is here, on the composition.
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from ..errors import ConfigError
from ..model import LOCAL_EMBEDDING_MODEL
from .aliases import DeprecatedNames, apply_deprecated
from .answer import AnswerSettings
from .api import ApiSettings
from .embedding import EmbeddingSettings
from .extraction import ExtractionSettings
from .ingest import IngestSettings
from .openai_client import OpenAISettings
from .secrets import SECRET_FIELDS, SecretParameters, fetch_secrets
from .store import IndexName, StoreSettings
from .tracing import TracingSettings

__all__ = ["GROUPS", "PIPELINE_REVISION", "SECRET_FIELDS", "IndexName", "Settings", "get_settings"]

#: Bump when extraction or chunking changes in a way that should re-index documents.
PIPELINE_REVISION = "1"


class Settings(
    StoreSettings,
    IngestSettings,
    EmbeddingSettings,
    OpenAISettings,
    AnswerSettings,
    ExtractionSettings,
    ApiSettings,
    TracingSettings,
    SecretParameters,
    BaseSettings,
):
    """Everything ragstream can be told. Secrets are ``SecretStr`` and never reach a log line."""

    model_config = SettingsConfigDict(env_prefix="RAGSTREAM_", extra="ignore", populate_by_name=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The usual sources, and the deprecated names of the environment below the current ones."""
        return (
            init_settings,
            env_settings,
            DeprecatedNames(settings_cls),
            dotenv_settings,
            file_secret_settings,
        )

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        return apply_deprecated(dict(data)) if isinstance(data, dict) else data

    @field_validator(*SECRET_FIELDS, mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        """An empty secret (``OPENAI_API_KEY=""``) is none: it must not switch anything on."""
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        return None if isinstance(text, str) and not text.strip() else value

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError(
                f"chunk_overlap ({self.chunk_overlap}) must be smaller than chunk_size ({self.chunk_size})"
            )
        if (
            self.embedding_provider == "openai"
            and self.openai_api_key is None
            and not self.openai_api_key_parameter
        ):
            raise ValueError("RAGSTREAM_EMBEDDING_PROVIDER=openai needs OPENAI_API_KEY (or its _PARAMETER)")
        lambda_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "")
        if "extract_memory_mb" not in self.model_fields_set and lambda_mb.isdigit():
            # in Lambda the worker shares the function's memory with the handler: past it, Lambda
            # would kill both (and the batch); capped below it, only the document fails
            self.extract_memory_mb = max(256, int(lambda_mb) * 6 // 10)
        return self

    # -- derived ---------------------------------------------------------------------------------------
    @property
    def embedder(self) -> Literal["local", "openai"]:
        """The embedding provider in effect."""
        if self.embedding_provider != "auto":
            return self.embedding_provider
        return "openai" if self.openai_api_key is not None else "local"

    @property
    def answerer(self) -> Literal["openai", "extractive"]:
        """The answering mode in effect."""
        if self.llm != "auto":
            return self.llm
        return "openai" if self.openai_api_key is not None else "extractive"

    @property
    def embedding_id(self) -> str:
        """Names the embedding space; vectors of different ids never share a collection."""
        if self.embedder == "local":
            return f"local/{LOCAL_EMBEDDING_MODEL}"
        dims = f"@{self.embedding_dimensions}" if self.embedding_dimensions else ""
        return f"openai/{self.embedding_model}{dims}"

    @property
    def fingerprint_parts(self) -> dict[str, object]:
        """Every setting that changes the points of a document, by name."""
        return {
            "pipeline": PIPELINE_REVISION,
            "index": self.index_identity,
            "embedding": self.embedding_id,
            "chunk_size": self.chunk_size,
            "chunk_overlap": self.chunk_overlap,
            "retrieval": self.retrieval,
            "context": sorted(self.context_parts),
            "pdf_ocr": self.pdf_ocr,
            "ocr": self.ocr,
        }

    @cached_property
    def fingerprint(self) -> str:
        """Hash of :attr:`fingerprint_parts`: a change re-indexes every document."""
        return hashlib.sha256(json.dumps(self.fingerprint_parts, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def context_parts(self) -> frozenset[str]:
        """The pieces of document context in every chunk's embedded text (``embed_context``)."""
        return frozenset(p for p in self.embed_context.split(",") if p and p != "none")

    @property
    def hybrid(self) -> bool:
        """Whether chunks get sparse vectors and searches a lexical side (``retrieval=hybrid``)."""
        return self.retrieval == "hybrid"

    @property
    def tracing(self) -> bool:
        """Whether traces go to Langfuse (both keys set)."""
        return self.langfuse_public_key is not None and self.langfuse_secret_key is not None

    @property
    def index_backend(self) -> IndexName:
        """The store in effect: RAGSTREAM_INDEX (which the deprecated names set), else Qdrant Edge."""
        return self.index if self.index is not None else "edge"

    @property
    def index_location(self) -> str:
        """Where the store is: its server URL, or the folder (file) of an embedded one."""
        backend = self.index_backend
        if backend in ("qdrant", "chroma", "milvus", "weaviate") and self.index_url:
            return self.index_url
        if backend == "pinecone":
            return self.index_url or "https://api.pinecone.io"
        if self.index_path is not None:
            return str(self.index_path)
        return str(self.home / ("milvus.db" if backend == "milvus" else backend))

    @property
    def index_identity(self) -> str:
        """Names the store holding the points (store, location, collection): the ledger's records are
        only true of it, so it is part of the fingerprint and a switch re-indexes everything."""
        location = self.index_location
        if "://" not in location and location != ":memory:":
            location = str(Path(location).resolve())
        tenant = f"/{self.chroma_tenant}/{self.chroma_database}" if self.chroma_tenant else ""
        if self.index_backend == "pinecone" and self.pinecone_namespace:
            tenant = f"/{self.pinecone_namespace}"
        return f"{self.index_backend}:{location}{tenant}#{self.collection}"

    @property
    def ledger_path(self) -> Path:
        """SQLite file of the local ledger."""
        return self.home / "ledger.sqlite"

    @property
    def max_document_bytes(self) -> int:
        return int(self.max_document_mb * 1024 * 1024)

    def api_key_document(self) -> str | None:
        """The API key secret: ``api_key`` (or its parameter, once resolved), else ``api_keys_file``."""
        if self.api_key is not None and self.api_keys_file is not None:
            raise ConfigError("set RAGSTREAM_API_KEY or RAGSTREAM_API_KEYS_FILE, not both")
        if self.api_key is not None:
            return self.api_key.get_secret_value() or None
        if self.api_keys_file is not None:
            try:
                return self.api_keys_file.read_text(encoding="utf-8").strip() or None
            except OSError as exc:
                raise ConfigError(
                    f"cannot read RAGSTREAM_API_KEYS_FILE {str(self.api_keys_file)!r}: {exc.strerror}"
                ) from None
        return None

    def resolve_secrets(self) -> Settings:
        """Fill secret fields named by ``*_parameter`` from SSM Parameter Store or Secrets Manager.

        Called once per cold start by the Lambda handlers; a no-op when no parameter is named.
        """
        resolved = fetch_secrets(self)
        return self.model_copy(update=resolved) if resolved else self


#: The groups of ``Settings``, in the order of the reference: one table each.
GROUPS: tuple[type[BaseModel], ...] = tuple(base for base in Settings.__bases__ if base is not BaseSettings)


def get_settings(**overrides: object) -> Settings:
    """Settings from the environment, with explicit overrides (CLI flags) on top."""
    os.environ.setdefault("DO_NOT_TRACK", "1")  # unstructured, and others that honour it: no telemetry
    os.environ.setdefault("SCARF_NO_ANALYTICS", "true")
    return Settings(**overrides)  # type: ignore[arg-type]
