"""A small, real OpenAI-compatible HTTP server for tests: embeddings and chat completions.

It listens on an ephemeral port of 127.0.0.1, records every request, and can be told to fail
(429, 500, any status) a number of times before it answers. For concurrency it counts the requests
in flight (each recorded request carries the count at its arrival, ``peak_in_flight`` the most),
waits ``delay`` seconds per request, and rate-limits deterministically: every Nth embeddings request
(``rate_limit_every``), and/or any embeddings request arriving while ``capacity`` are in flight.
Embeddings are deterministic: a hash of the input seeds the vector, so the same text always gets the
same unit vector.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import random
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from .served import HTTPPeer, JSONHandler

__all__ = ["ChatReply", "OpenAIServer", "RecordedRequest", "fake_embedding"]

#: Receives the JSON body of a chat request; returns the assistant's text, or a whole message dict.
ChatReply = Callable[[dict[str, Any]], "str | dict[str, Any]"]

_DEFAULT_DIMENSIONS = {"text-embedding-3-large": 3072}


def fake_embedding(item: str | list[int], dimensions: int) -> list[float]:
    """The unit vector the server answers for one input."""
    key = item if isinstance(item, str) else json.dumps(item)
    rng = random.Random(hashlib.sha256(key.encode()).digest())
    vector = [rng.gauss(0.0, 1.0) for _ in range(dimensions)]
    norm = sum(x * x for x in vector) ** 0.5
    return [x / norm for x in vector]


def _count_tokens(item: str | list[int]) -> int:
    return len(item.split()) if isinstance(item, str) else len(item)


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    body: Any
    at: float = 0.0  # time.monotonic() at arrival
    in_flight: int = 0  # requests in flight at its arrival, itself included


@dataclass
class _Failure:
    status: int
    times: int | None  # None: until cleared


@dataclass
class OpenAIServer(HTTPPeer):
    """OpenAI API enough for the openai SDK. Use as a context manager, or ``start()``/``stop()``;
    ``url`` plus ``/v1`` is the OpenAI base URL."""

    _name = "openai-peer"

    chat_reply: ChatReply = field(default=lambda body: "ok")
    api_key: str | None = None  # when set, other bearer tokens get 401
    retry_after_ms: int | None = 1  # sent with 429/5xx besides Retry-After: 0, so clients retry at once
    delay: float = 0.0  # seconds to wait before answering (the latency of each request)
    retry_after: float = 0.0  # the Retry-After header of 429/5xx answers, in seconds
    rate_limit_every: int = 0  # answer 429 to every Nth embeddings request (0: never)
    capacity: int | None = None  # answer 429 to embeddings requests arriving while this many are in flight

    requests: list[RecordedRequest] = field(default_factory=list, init=False)
    in_flight: int = field(default=0, init=False)
    peak_in_flight: int = field(default=0, init=False)
    throttled: list[RecordedRequest] = field(default_factory=list, init=False)  # those answered 429
    _failures: list[_Failure] = field(default_factory=list, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    # -- control -----------------------------------------------------------------------------------

    def fail(self, status: int, times: int | None = 1) -> None:
        """Answer ``status`` to the next ``times`` requests (``None``: until :meth:`clear_failures`)."""
        with self._lock:
            self._failures.append(_Failure(status, times))

    def clear_failures(self) -> None:
        with self._lock:
            self._failures.clear()

    def requests_to(self, path: str) -> list[RecordedRequest]:
        """The recorded requests of one path, e.g. ``/v1/embeddings``."""
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        return _Handler

    # -- what the handler asks -----------------------------------------------------------------------

    def _record(self, request: RecordedRequest) -> tuple[RecordedRequest, int | None]:
        """Record a request as in flight; return it and the status to fail it with, if any."""
        with self._lock:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            request = dataclasses.replace(request, at=time.monotonic(), in_flight=self.in_flight)
            self.requests.append(request)
            if request.path.endswith("/embeddings"):
                serial = sum(r.path == request.path for r in self.requests)
                if (self.rate_limit_every and serial % self.rate_limit_every == 0) or (
                    self.capacity is not None and self.in_flight > self.capacity
                ):
                    self.throttled.append(request)
                    return request, 429
            if not self._failures:
                return request, None
            failure = self._failures[0]
            if failure.times is not None:
                failure.times -= 1
                if failure.times <= 0:
                    self._failures.pop(0)
            return request, failure.status

    def _done(self) -> None:
        with self._lock:
            self.in_flight -= 1


_ERRORS = {
    400: ("invalid_request_error", None, "Bad request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided: {key}."),
    403: ("invalid_request_error", "unsupported_country_region_territory", "Forbidden."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached. Please try again in 0s."),
    500: ("server_error", None, "The server had an error while processing your request."),
    503: ("server_error", None, "The engine is currently overloaded."),
}


class _Handler(JSONHandler):
    owner: OpenAIServer

    def do_GET(self) -> None:
        self._handle(None)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        self._handle(body)

    def _handle(self, body: Any) -> None:
        owner = self.owner
        path = self.path.split("?", 1)[0]
        _, status = owner._record(
            RecordedRequest(self.command, path, {k.lower(): v for k, v in self.headers.items()}, body)
        )
        try:
            self._answer(path, body, status)
        finally:
            owner._done()

    def _answer(self, path: str, body: Any, status: int | None) -> None:
        owner = self.owner
        if owner.delay:
            time.sleep(owner.delay)
        token = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
        if status is None and owner.api_key is not None and token != owner.api_key:
            status = 401
        if status is not None:
            self._error(status, token)
            return
        if self.command == "POST" and path.endswith("/embeddings") and isinstance(body, dict):
            self._json(200, _embeddings(body))
        elif self.command == "POST" and path.endswith("/chat/completions") and isinstance(body, dict):
            if body.get("stream"):
                self._stream(_chat_chunks(body, owner.chat_reply(body)))
            else:
                self._json(200, _chat(body, owner.chat_reply(body)))
        else:
            self._error(404, token)

    def _error(self, status: int, token: str) -> None:
        kind, code, message = _ERRORS.get(
            status, ("server_error" if status >= 500 else "invalid_request_error", None, f"Error {status}.")
        )
        masked = f"{token[:3]}****{token[-4:]}" if len(token) > 8 else "****"
        headers: dict[str, str] = {}
        if status == 429 or status >= 500:
            headers["Retry-After"] = f"{self.owner.retry_after:g}"
            if self.owner.retry_after_ms is not None:
                headers["retry-after-ms"] = str(self.owner.retry_after_ms)
        error = {"message": message.format(key=masked), "type": kind, "param": None, "code": code}
        self._json(status, {"error": error}, headers)

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        """OpenAI's replies carry a request id (the SDK reads it into its errors)."""
        request_id = hashlib.sha256(json.dumps(payload).encode()).hexdigest()[:12]
        super()._json(status, payload, {"x-request-id": f"req_{request_id}", **(headers or {})})

    def _stream(self, chunks: Iterator[dict[str, Any]]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        for chunk in chunks:
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        self.close_connection = True


def _embeddings(body: dict[str, Any]) -> dict[str, Any]:
    model = str(body.get("model", "text-embedding-3-small"))
    dimensions = int(body.get("dimensions") or _DEFAULT_DIMENSIONS.get(model, 1536))
    raw = body.get("input", [])
    # one string, one token list, or a list of either
    items: list[str | list[int]] = (
        [raw] if isinstance(raw, str) or (raw and isinstance(raw[0], int)) else list(raw)
    )
    data = []
    for index, item in enumerate(items):
        vector = fake_embedding(item, dimensions)
        encoded: list[float] | str = vector
        if body.get("encoding_format") == "base64":
            encoded = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    tokens = sum(_count_tokens(item) for item in items)
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def _message(reply: str | dict[str, Any]) -> dict[str, Any]:
    return {"role": "assistant", "content": reply} if isinstance(reply, str) else reply


def _usage(body: dict[str, Any], message: dict[str, Any]) -> dict[str, int]:
    prompt = sum(len(str(m.get("content") or "").split()) for m in body.get("messages", []))
    completion = len(str(message.get("content") or "").split())
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _chat(body: dict[str, Any], reply: str | dict[str, Any]) -> dict[str, Any]:
    message = _message(reply)
    return {
        "id": "chatcmpl-peer",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "gpt-4o-mini"),
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}],
        "usage": _usage(body, message),
    }


def _chat_chunks(body: dict[str, Any], reply: str | dict[str, Any]) -> Iterator[dict[str, Any]]:
    message = _message(reply)
    base = {
        "id": "chatcmpl-peer",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body.get("model", "gpt-4o-mini"),
    }
    yield {**base, "choices": [{"index": 0, "delta": message, "finish_reason": None}]}
    yield {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    if (body.get("stream_options") or {}).get("include_usage"):
        yield {**base, "choices": [], "usage": _usage(body, message)}
