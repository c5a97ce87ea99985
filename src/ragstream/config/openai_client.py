"""The OpenAI client, shared by the embeddings and the answers."""

from __future__ import annotations

from pydantic import AliasChoices, BaseModel, Field, SecretStr


class OpenAISettings(BaseModel):
    """OpenAI.

    The client of the embeddings and the answers. ``OPENAI_API_KEY`` (or ``RAGSTREAM_OPENAI_API_KEY``)
    switches both to OpenAI; an empty key counts as none.
    """

    openai_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("RAGSTREAM_OPENAI_API_KEY", "OPENAI_API_KEY"),
        description="OpenAI API key: embeddings and answers by OpenAI (RAGSTREAM_EMBEDDING_PROVIDER and "
        "RAGSTREAM_LLM auto). Empty: none.",
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
