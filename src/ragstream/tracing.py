"""Langfuse tracing: one trace per ingested object event and per query request; a no-op without keys.

:func:`build_tracer` gives a :class:`LangfuseTracer` when both Langfuse keys are set, else the
:data:`NOOP` tracer, which sends nothing, costs nothing and says so in one log line. The pipeline and
the retriever take a tracer as a field (default :data:`NOOP`), so tests hand in their own.

Observations are never made "current": a document's trace stays open while the pipeline prepares
the next documents and embeds them together, so each :class:`Span` is a handle its owner ends.
A tracing failure is logged at debug level and never reaches the caller. :meth:`Tracer.flush` is
bounded by ``langfuse_flush_timeout``: an unreachable Langfuse costs at most that, once per
invocation, whatever the SDK's own retries.
"""

from __future__ import annotations

import atexit
import functools
import logging
import math
import re
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar

if TYPE_CHECKING:
    from .config import Settings

__all__ = [
    "NOOP",
    "NO_SPAN",
    "LangfuseTracer",
    "ResolvedPrompt",
    "Span",
    "Tracer",
    "build_tracer",
    "flush_after",
    "flush_all",
    "is_trace_id",
    "to_template",
]

log = logging.getLogger(__name__)

ObservationType = Literal["span", "generation", "embedding", "retriever", "chain", "event"]
Level = Literal["DEBUG", "DEFAULT", "WARNING", "ERROR"]
F = TypeVar("F", bound=Callable[..., Any])

#: Langfuse trace ids: 32 lower-case hex digits (W3C trace context).
_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
#: ``{{ name }}`` variables of a Langfuse text prompt.
_VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
#: After a failed prompt fetch, the packaged prompt is used for this long before Langfuse is asked again.
PROMPT_RETRY_SECONDS = 60.0
#: Langfuse limits propagated (trace-level) string values to this many characters.
_MAX_TRACE_VALUE = 200


def is_trace_id(value: str) -> bool:
    """Whether ``value`` is a trace id as this service hands them out."""
    return bool(_TRACE_ID.match(value))


def to_template(packaged: str, variables: Sequence[str]) -> str:
    """A packaged prompt (``{name}`` placeholders) in Langfuse's ``{{name}}`` syntax."""
    for name in variables:
        packaged = packaged.replace("{" + name + "}", "{{" + name + "}}")
    return packaged


@dataclass(frozen=True)
class ResolvedPrompt:
    """The prompt an answer used: from Langfuse prompt management, or the packaged fallback."""

    template: str  # Langfuse syntax: {{variable}}
    name: str
    version: int | None = None  # None for the packaged prompt
    source: Literal["langfuse", "packaged"] = "packaged"
    client: Any = None  # Langfuse's prompt client, to link the generation to the prompt version

    def compile(self, **variables: str) -> str:
        """The template with its variables filled in one pass (values are never re-expanded)."""
        return _VARIABLE.sub(lambda m: variables.get(m.group(1), m.group(0)), self.template)


class Span:
    """A handle on one observation; every method is a no-op on the no-op tracer, and never raises."""

    trace_id: str | None = None

    def child(self, name: str, *, as_type: ObservationType = "span", **fields: Any) -> Span:
        """A started child observation (end it, or use it as a context manager)."""
        return self

    def update(self, **fields: Any) -> Span:
        """Set fields: input, output, metadata, level, status_message, model, usage_details..."""
        return self

    def set_trace(
        self, *, tags: Sequence[str] | None = None, metadata: Mapping[str, Any] | None = None
    ) -> Span:
        """Set trace-level tags and metadata (known only once the work is done)."""
        return self

    def end(self) -> None:
        """End the observation."""

    def __enter__(self) -> Span:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is not None:
            self.update(level="ERROR", status_message=f"{type(exc).__name__}: {exc}"[:1000])
        self.end()


#: The span of the no-op tracer.
NO_SPAN = Span()


class Tracer:
    """The no-op tracer: nothing is recorded or sent. :class:`LangfuseTracer` records to Langfuse."""

    enabled: bool = False

    def start_trace(
        self,
        name: str,
        *,
        as_type: ObservationType = "span",
        input: Any = None,
        metadata: Mapping[str, Any] | None = None,
        tags: Sequence[str] = (),
        user_id: str | None = None,
        session_id: str | None = None,
    ) -> Span:
        """The root observation of a new trace, independent of any other open trace."""
        return NO_SPAN

    def prompt(self, name: str | None, *, fallback: str, label: str | None = None) -> ResolvedPrompt:
        """Prompt ``name`` from Langfuse, or ``fallback`` (Langfuse syntax) when it cannot be had."""
        return ResolvedPrompt(template=fallback, name=name or "packaged")

    def score(self, trace_id: str, name: str, value: float, comment: str | None = None) -> bool:
        """Queue a score for a trace; whether it was accepted for sending."""
        return False

    def flush(self, timeout: float | None = None) -> bool:
        """Send what is buffered, waiting at most ``timeout`` seconds; whether it finished in time."""
        return True

    def close(self) -> None:
        """Flush (bounded) and stop background work."""


#: The tracer used when none is configured.
NOOP = Tracer()


# -- Langfuse ---------------------------------------------------------------------------------------------


class _LangfuseSpan(Span):
    """A Langfuse observation (``LangfuseSpan``, ``LangfuseGeneration``...) behind the :class:`Span` API."""

    def __init__(self, tracer: LangfuseTracer, observation: Any, propagated: dict[str, Any]) -> None:
        self._tracer = tracer
        self._obs = observation
        self._propagated = propagated  # trace-level attributes, for the children too
        self._ended = False
        self.trace_id = getattr(observation, "trace_id", None)

    def child(self, name: str, *, as_type: ObservationType = "span", **fields: Any) -> Span:
        try:
            from langfuse import propagate_attributes

            with propagate_attributes(**self._propagated):
                obs = self._obs.start_observation(name=name, as_type=as_type, **fields)
            return _LangfuseSpan(self._tracer, obs, self._propagated)
        except Exception as exc:
            log.debug("tracing: could not start %s: %s", name, exc)
            return NO_SPAN

    def update(self, **fields: Any) -> Span:
        try:
            self._obs.update(**fields)
        except Exception as exc:
            log.debug("tracing: could not update an observation: %s", exc)
        return self

    def set_trace(
        self, *, tags: Sequence[str] | None = None, metadata: Mapping[str, Any] | None = None
    ) -> Span:
        try:
            from langfuse import LangfuseOtelSpanAttributes as A

            otel = self._obs._otel_span  # the SDK sets trace attributes on spans this same way
            if tags is not None:  # added to the tags the trace started with
                merged = dict.fromkeys([*self._propagated.get("tags", ()), *(str(t) for t in tags)])
                otel.set_attribute(A.TRACE_TAGS, [t[:_MAX_TRACE_VALUE] for t in merged])
            for key, value in (metadata or {}).items():
                if value is not None:
                    otel.set_attribute(f"{A.TRACE_METADATA}.{key}", _json(value))
        except Exception as exc:
            log.debug("tracing: could not set trace attributes: %s", exc)
        return self

    def end(self) -> None:
        if self._ended:
            return
        self._ended = True
        try:
            self._obs.end()
        except Exception as exc:
            log.debug("tracing: could not end an observation: %s", exc)


class LangfuseTracer(Tracer):
    """Records traces, scores and prompt links to Langfuse (Cloud or self-hosted)."""

    enabled = True

    def __init__(
        self,
        *,
        public_key: str,
        secret_key: str,
        host: str,
        environment: str | None = None,
        flush_timeout: float = 3.0,
        prompt_label: str | None = None,
    ) -> None:
        from langfuse import Langfuse
        from opentelemetry.sdk.trace import TracerProvider

        self.host = host.rstrip("/")
        self.flush_timeout = flush_timeout
        self.prompt_label = prompt_label
        self._flushing: threading.Thread | None = None
        self._prompt_failed_at: dict[str, float] = {}
        # An own TracerProvider: the process-wide OpenTelemetry provider stays untouched.
        self._provider = TracerProvider()
        self.client = Langfuse(
            public_key=public_key,
            secret_key=secret_key,
            base_url=self.host,
            environment=environment,
            timeout=max(1, math.ceil(flush_timeout)),
            tracing_enabled=True,
            tracer_provider=self._provider,
        )
        # The SDK flushes at exit without a bound; ours is bounded (see close()).
        resources = getattr(self.client, "_resources", None)
        if resources is not None:
            atexit.unregister(resources.shutdown)
        _LIVE.add(self)
        atexit.register(_close_at_exit, weakref.ref(self))
        log.info("tracing to Langfuse at %s", self.host)

    # -- traces -------------------------------------------------------------------------------------------
    def start_trace(
        self,
        name: str,
        *,
        as_type: ObservationType = "span",
        input: Any = None,
        metadata: Mapping[str, Any] | None = None,
        tags: Sequence[str] = (),
        user_id: str | None = None,
        session_id: str | None = None,
    ) -> Span:
        propagated: dict[str, Any] = {"trace_name": name}
        if tags:
            propagated["tags"] = [str(t)[:_MAX_TRACE_VALUE] for t in tags]
        if user_id:
            propagated["user_id"] = user_id[:_MAX_TRACE_VALUE]
        if session_id:
            propagated["session_id"] = session_id[:_MAX_TRACE_VALUE]
        if metadata:
            propagated["metadata"] = {k: v for k, v in metadata.items() if v is not None}
        try:
            from langfuse import propagate_attributes
            from opentelemetry import context

            token = context.attach(context.Context())  # a new trace, never a child of an open one
            try:
                with propagate_attributes(**propagated):
                    obs = self.client.start_observation(name=name, as_type=as_type, input=input)  # type: ignore[arg-type]
            finally:
                context.detach(token)
            return _LangfuseSpan(self, obs, propagated)
        except Exception as exc:
            log.debug("tracing: could not start trace %s: %s", name, exc)
            return NO_SPAN

    # -- prompts -----------------------------------------------------------------------------------------
    def prompt(self, name: str | None, *, fallback: str, label: str | None = None) -> ResolvedPrompt:
        packaged = ResolvedPrompt(template=fallback, name=name or "packaged")
        if not name:
            return packaged
        failed = self._prompt_failed_at.get(name)
        if failed is not None and time.monotonic() - failed < PROMPT_RETRY_SECONDS:
            return packaged
        try:
            got = self.client.get_prompt(
                name,
                label=label or self.prompt_label,
                type="text",
                fallback=fallback,
                max_retries=0,
                fetch_timeout_seconds=max(1, math.ceil(self.flush_timeout)),
            )
        except Exception as exc:
            log.warning("Langfuse prompt %r unavailable (%s): using the packaged prompt", name, exc)
            self._prompt_failed_at[name] = time.monotonic()
            return packaged
        text = getattr(got, "prompt", None)
        if getattr(got, "is_fallback", False) or not isinstance(text, str):
            if not isinstance(text, str):
                log.warning("Langfuse prompt %r is not a text prompt: using the packaged prompt", name)
            self._prompt_failed_at[name] = time.monotonic()
            return packaged
        self._prompt_failed_at.pop(name, None)
        return ResolvedPrompt(template=text, name=name, version=got.version, source="langfuse", client=got)

    # -- scores ------------------------------------------------------------------------------------------
    def score(self, trace_id: str, name: str, value: float, comment: str | None = None) -> bool:
        try:
            self.client.create_score(
                name=name, value=float(value), trace_id=trace_id, data_type="NUMERIC", comment=comment
            )
        except Exception as exc:
            log.warning("could not queue a score for trace %s: %s", trace_id, exc)
            return False
        return True

    # -- flushing ----------------------------------------------------------------------------------------
    def flush(self, timeout: float | None = None) -> bool:
        """Flush in a background thread and wait at most ``timeout`` (default: the setting) for it."""
        bound = self.flush_timeout if timeout is None else timeout
        if self._flushing is None or not self._flushing.is_alive():
            self._flushing = threading.Thread(target=self._flush, name="langfuse-flush", daemon=True)
            self._flushing.start()
        self._flushing.join(bound)
        if self._flushing.is_alive():
            log.warning("Langfuse flush did not finish within %.1fs; traces may be lost", bound)
            return False
        return True

    def _flush(self) -> None:
        try:
            self.client.flush()
        except Exception as exc:
            log.warning("Langfuse flush failed: %s", exc)

    def close(self) -> None:
        _LIVE.discard(self)
        if not self.flush():
            return  # stuck on an unreachable Langfuse: do not wait for it again
        try:
            self.client.shutdown()
        except Exception as exc:
            log.debug("Langfuse shutdown failed: %s", exc)


_LIVE: set[LangfuseTracer] = set()  # strong: a CLI command drops its pipeline before the flush at exit
_off_logged = False


def _close_at_exit(ref: weakref.ref[LangfuseTracer]) -> None:
    """At interpreter exit no thread can start: flush the spans with the provider's own bound."""
    tracer = ref()
    if tracer is None or tracer not in _LIVE:
        return
    _LIVE.discard(tracer)
    try:
        tracer._provider.force_flush(int(tracer.flush_timeout * 1000))
    except Exception as exc:
        log.debug("Langfuse flush at exit failed: %s", exc)


def _json(value: Any) -> str:
    import json

    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def build_tracer(settings: Settings) -> Tracer:
    """A Langfuse tracer when both keys are set; otherwise :data:`NOOP` (logged once per process)."""
    global _off_logged
    if settings.langfuse_public_key is None or settings.langfuse_secret_key is None:
        if not _off_logged:
            log.info("tracing is off: set LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY to trace to Langfuse")
            _off_logged = True
        return NOOP
    return LangfuseTracer(
        public_key=settings.langfuse_public_key.get_secret_value(),
        secret_key=settings.langfuse_secret_key.get_secret_value(),
        host=settings.langfuse_host,
        environment=settings.langfuse_environment,
        flush_timeout=settings.langfuse_flush_timeout,
        prompt_label=settings.langfuse_prompt_label,
    )


def flush_all(timeout: float | None = None) -> None:
    """Flush every Langfuse tracer of this process (the CLI, at exit), each within its bound."""
    for tracer in list(_LIVE):
        tracer.flush(timeout)


def flush_after(tracer: Tracer) -> Callable[[F], F]:
    """Decorate a Lambda handler: flush ``tracer`` (bounded) after every invocation, even a failed one."""

    def decorate(handler: F) -> F:
        @functools.wraps(handler)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return handler(*args, **kwargs)
            finally:
                tracer.flush()

        return wrapper  # type: ignore[return-value]

    return decorate
