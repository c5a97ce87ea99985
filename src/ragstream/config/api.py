"""The query API: who may call it, what it lets through."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr


class ApiSettings(BaseModel):
    """The query API.

    Who may call it (API keys or JWT scopes) and what it lets through.
    """

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
