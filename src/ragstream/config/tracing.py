"""Tracing with Langfuse: the keys (without both tracing is off), the host, the answer prompt."""

from __future__ import annotations

from pydantic import AliasChoices, BaseModel, Field, SecretStr


class TracingSettings(BaseModel):
    """Tracing with Langfuse.

    Without both keys tracing is off and nothing is sent.
    """

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
