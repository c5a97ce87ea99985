"""Fixtures of every test: fake AWS credentials, local OpenAI and Langfuse servers (helpers are in
``tests.support``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.peers.langfuse_server import LangfuseServer
from tests.peers.openai_server import OpenAIServer

AWS_REGION = "eu-west-1"


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake AWS credentials and region, so that boto3 never reaches a real account."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": AWS_REGION,
    }.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def openai_server() -> Iterator[OpenAIServer]:
    """A real OpenAI-compatible server on 127.0.0.1; ``openai_server.url + "/v1"`` is the base URL."""
    with OpenAIServer() as server:
        yield server


@pytest.fixture
def langfuse_server() -> Iterator[LangfuseServer]:
    """A Langfuse receiver on 127.0.0.1 (OTLP traces, scores, prompts) with keys of its own.

    Each test gets new keys: the SDK keeps one client state per public key for the whole process.
    """
    run = uuid.uuid4().hex[:12]
    with LangfuseServer(public_key=f"pk-lf-test-{run}", secret_key=f"sk-lf-test-{run}") as server:
        yield server
