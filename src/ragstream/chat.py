"""The chat model that writes answers: OpenAI chat completions through the openai SDK.

The answer side needs one call (a prompt in, a reply with its token usage out), so it talks to the
openai SDK that the OpenAI embedder already loads, rather than through langchain-openai: in the query
image that keeps langchain-openai, tiktoken and langsmith's tracers out of the cold start (about a
second of imports on a Lambda-sized CPU). Retries on 429 / 5xx / timeouts are the SDK's own
(``RAGSTREAM_OPENAI_MAX_RETRIES``, ``RAGSTREAM_OPENAI_TIMEOUT``); what it raises after them is
translated by :func:`ragstream.embeddings.translate_openai_error` where the reply is used.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from .errors import ConfigError

if TYPE_CHECKING:
    from .config import Settings

__all__ = ["ChatModel", "ChatReply", "OpenAIChat", "build_chat_model"]


@dataclass(frozen=True)
class ChatReply:
    """What a chat model answered: its text, its token usage in Langfuse's keys (``input``,
    ``output``, ``total``, ``input_cached_tokens``; None when not reported) and reply metadata
    (``model_name``, ``finish_reason``, ``system_fingerprint`` when given)."""

    content: str
    usage: dict[str, int] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class ChatModel(Protocol):
    """Writes the answer to one prompt (the compiled answer prompt, sent as one user message)."""

    def complete(self, prompt: str) -> ChatReply:
        """The model's reply to ``prompt``; raises what the SDK raises once its retries are spent."""
        ...


class OpenAIChat:
    """OpenAI's chat completions (or any OpenAI-compatible endpoint, by ``base_url``)."""

    def __init__(
        self,
        *,
        model: str,
        temperature: float,
        api_key: str | None,
        base_url: str | None = None,
        max_retries: int = 2,
        timeout: float | None = None,
    ) -> None:
        self.model = model
        self.temperature = temperature
        # The client (and the openai SDK's import, a tenth of a second or more of a cold start) is made
        # on first use; it makes no request when built, and reads OPENAI_API_KEY itself when api_key is None.
        self._client_args: dict[str, Any] = {
            "api_key": api_key,
            "base_url": base_url,
            "max_retries": max_retries,
            "timeout": timeout,
        }
        self._client: Any = None
        self._lock = threading.Lock()

    def _get_client(self) -> Any:
        with self._lock:
            if self._client is None:
                import openai

                try:
                    self._client = openai.OpenAI(**self._client_args)
                except openai.OpenAIError:  # no key given and none in OPENAI_API_KEY
                    raise ConfigError(
                        "the OpenAI chat model needs a key: set OPENAI_API_KEY (or RAGSTREAM_OPENAI_API_KEY, "
                        "or its _PARAMETER)"
                    ) from None
            return self._client

    def complete(self, prompt: str) -> ChatReply:
        response = self._get_client().chat.completions.create(
            model=self.model,
            temperature=self.temperature,
            messages=[{"role": "user", "content": prompt}],
        )
        choice = response.choices[0] if response.choices else None
        content = (choice.message.content if choice is not None else None) or ""
        metadata = {
            "model_name": response.model,
            "finish_reason": choice.finish_reason if choice is not None else None,
            "system_fingerprint": response.system_fingerprint,
        }
        return ChatReply(
            content=content,
            usage=_usage(response.usage),
            metadata={k: v for k, v in metadata.items() if v},
        )


def _usage(usage: Any) -> dict[str, int] | None:
    """The SDK's ``CompletionUsage`` in Langfuse's keys."""
    if usage is None:
        return None
    out = {
        "input": int(usage.prompt_tokens or 0),
        "output": int(usage.completion_tokens or 0),
        "total": int(usage.total_tokens or 0),
    }
    details = getattr(usage, "prompt_tokens_details", None)
    cached = getattr(details, "cached_tokens", None) if details is not None else None
    if cached:
        out["input_cached_tokens"] = int(cached)
    return out


def build_chat_model(settings: Settings) -> OpenAIChat:
    """The answering model from the settings (``RAGSTREAM_CHAT_MODEL`` on the OpenAI endpoint)."""
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    return OpenAIChat(
        model=settings.chat_model,
        temperature=settings.chat_temperature,
        api_key=key,
        base_url=settings.openai_base_url,
        max_retries=settings.openai_max_retries,
        timeout=settings.openai_timeout,
    )
