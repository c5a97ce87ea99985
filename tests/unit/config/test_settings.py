"""Settings as a composition of groups: the old names still read (with a warning), an empty secret is
none, and one list of secrets drives both their ``_parameter`` fields and their resolution."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from ragstream.config import GROUPS, SECRET_FIELDS, Settings

OLD_AND_NEW = [
    ("RAGSTREAM_QDRANT_URL", "https://q.example:6333", "index_url"),
    ("RAGSTREAM_QDRANT_API_KEY", "qd-key", "index_api_key"),
    ("RAGSTREAM_QDRANT_API_KEY_PARAMETER", "/ragstream/qdrant-api-key", "index_api_key_parameter"),
]


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No ragstream or OpenAI variable of the shell running the tests."""
    import os

    for name in list(os.environ):
        if name.upper().startswith(("RAGSTREAM_", "OPENAI_", "LANGFUSE_")):
            monkeypatch.delenv(name)
    return monkeypatch


def _value(settings: Settings, field: str) -> object:
    value = getattr(settings, field)
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def test_every_field_belongs_to_exactly_one_group() -> None:
    fields = [name for group in GROUPS for name in group.model_fields]
    assert len(fields) == len(set(fields)), "a field in two groups"
    assert set(fields) == set(Settings.model_fields)


@pytest.mark.parametrize(("old", "value", "field"), OLD_AND_NEW)
def test_an_old_name_in_the_environment_sets_the_new_field_and_warns(
    env: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
    old: str,
    value: str,
    field: str,
) -> None:
    env.setenv("RAGSTREAM_INDEX", "qdrant")
    env.setenv(old, value)
    with caplog.at_level(logging.WARNING, "ragstream.config"), pytest.deprecated_call(match=old):
        settings = Settings(home=tmp_path)
    assert _value(settings, field) == value
    assert f"use RAGSTREAM_{field.upper()}" in caplog.text
    assert old.removeprefix("RAGSTREAM_").lower() not in Settings.model_fields  # one field, one name


def test_the_old_qdrant_url_chooses_qdrant_and_wins_over_the_new_name(env: pytest.MonkeyPatch) -> None:
    env.setenv("RAGSTREAM_QDRANT_URL", "https://old:6333")
    env.setenv("RAGSTREAM_INDEX_URL", "https://new:6333")
    with pytest.deprecated_call():
        settings = Settings()
    assert settings.index_backend == "qdrant" and settings.index_location == "https://old:6333"


def test_the_old_qdrant_names_do_not_reach_another_store(env: pytest.MonkeyPatch) -> None:
    env.setenv("RAGSTREAM_QDRANT_URL", "https://q:6333")
    env.setenv("RAGSTREAM_QDRANT_API_KEY", "qd-key")
    with pytest.deprecated_call():
        settings = Settings(index="chroma", index_url="http://chroma:8000")
    assert settings.index_location == "http://chroma:8000" and settings.index_api_key is None


def test_the_old_local_index_names_the_store(env: pytest.MonkeyPatch) -> None:
    env.setenv("RAGSTREAM_LOCAL_INDEX", "qdrant-local")
    with pytest.deprecated_call(match="RAGSTREAM_LOCAL_INDEX"):
        assert Settings().index_backend == "qdrant"
    env.setenv("RAGSTREAM_LOCAL_INDEX", "nowhere")
    with pytest.deprecated_call(), pytest.raises(ValidationError, match="RAGSTREAM_LOCAL_INDEX"):
        Settings()


@pytest.mark.parametrize("name", ["OPENAI_API_KEY", "RAGSTREAM_OPENAI_API_KEY"])
def test_an_empty_openai_key_is_missing(env: pytest.MonkeyPatch, name: str) -> None:
    env.setenv(name, "")
    with pytest.raises(ValidationError, match="needs OPENAI_API_KEY"):
        Settings(embedding_provider="openai")
    settings = Settings()
    assert settings.openai_api_key is None
    assert (settings.embedder, settings.answerer) == ("local", "extractive")


def test_the_secret_fields_are_the_secrets_and_each_has_its_parameter() -> None:
    secrets = {name for name, f in Settings.model_fields.items() if f.annotation == SecretStr | None}
    assert set(SECRET_FIELDS) == secrets
    assert {f"{name}_parameter" for name in SECRET_FIELDS} <= set(Settings.model_fields)


def test_resolve_secrets_reads_each_named_secret_it_lacks(env: pytest.MonkeyPatch, aws_env: None) -> None:
    import boto3
    from moto import mock_aws

    with mock_aws():
        ssm = boto3.client("ssm")
        for name in SECRET_FIELDS:
            ssm.put_parameter(Name=f"/rs/{name}", Value=f"from-ssm-{name}", Type="SecureString")
        named = {f"{name}_parameter": f"/rs/{name}" for name in SECRET_FIELDS}
        resolved = Settings(**named, api_key="given").resolve_secrets()  # type: ignore[arg-type]
    for name in SECRET_FIELDS:
        assert _value(resolved, name) == ("given" if name == "api_key" else f"from-ssm-{name}")
    assert Settings().resolve_secrets() == Settings()  # nothing named: nothing read
