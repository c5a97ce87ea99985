"""Secrets named rather than given: SSM Parameter Store or Secrets Manager holds the value (the cloud).

The ``*_parameter`` fields below are the one list of secrets: ``SECRET_FIELDS`` is read off them, and
``fetch_secrets`` resolves exactly those. A new secret is one more field here (and its ``SecretStr``).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, SecretStr

from ..errors import ConfigError

_NAMED = "SSM name or secret ARN of RAGSTREAM_{}."


def _named(field: str, more: str = "") -> Any:
    """A ``*_parameter`` field: unset, or the SSM name or secret ARN holding that secret."""
    return Field(default=None, description=_NAMED.format(field.upper()) + more)


class SecretParameters(BaseModel):
    """Secrets from AWS.

    Each names the SSM parameter (a SecureString) or the Secrets Manager secret (its ARN) holding a
    secret setting; the Lambda handlers read it once per cold start. A secret given directly wins.
    """

    openai_api_key_parameter: str | None = _named("openai_api_key")
    index_api_key_parameter: str | None = _named("index_api_key")
    api_key_parameter: str | None = _named("api_key", " One key, or the JSON document of scoped keys.")
    feedback_secret_parameter: str | None = _named("feedback_secret")
    langfuse_public_key_parameter: str | None = _named("langfuse_public_key")
    langfuse_secret_key_parameter: str | None = _named("langfuse_secret_key")


#: The secret settings (``SecretStr``), each resolvable from its ``<name>_parameter``.
SECRET_FIELDS: tuple[str, ...] = tuple(
    name.removesuffix("_parameter") for name in SecretParameters.model_fields
)


def fetch_secrets(settings: BaseModel) -> dict[str, SecretStr]:
    """The secrets ``settings`` names by parameter and does not hold yet, read from AWS.

    A failure is a ``ConfigError`` naming the field and the parameter, never the value.
    """
    wanted = {
        field: name
        for field in SECRET_FIELDS
        if (name := getattr(settings, f"{field}_parameter")) and getattr(settings, field) is None
    }
    if not wanted:
        return {}
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
    return resolved
