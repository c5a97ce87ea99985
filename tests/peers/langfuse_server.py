"""A small, real Langfuse receiver for tests: the OTLP trace export and the public REST routes used.

It listens on an ephemeral port of 127.0.0.1 and answers what the Langfuse SDK sends:

- ``POST /api/public/otel/v1/traces``: OTLP/HTTP protobuf (gzipped or not), decoded with the
  OpenTelemetry proto package into :class:`ExportedSpan` records;
- ``POST /api/public/scores`` (SDK v5: a JSON list) and ``POST /api/public/ingestion`` (older SDKs:
  a batch of ``score-create`` events): kept in :attr:`LangfuseServer.scores`;
- ``GET /api/public/v2/prompts/{name}``: the prompts put in :attr:`LangfuseServer.prompts`, 404 else.

Every request is recorded with its headers. ``hang()`` makes every request wait (a black-holed
Langfuse) until ``release()``.
"""

from __future__ import annotations

import base64
import gzip
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

__all__ = ["ExportedSpan", "LangfuseServer", "RecordedRequest"]

OTLP_PATH = "/api/public/otel/v1/traces"


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the receiver got it."""

    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    size: int


@dataclass
class ExportedSpan:
    """One span of an OTLP export, decoded."""

    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    attributes: dict[str, Any]
    start_ns: int
    end_ns: int
    scope: str
    resource: dict[str, Any]
    children: list[ExportedSpan] = field(default_factory=list, repr=False)

    @property
    def seconds(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9

    @property
    def type(self) -> str | None:
        return self.attributes.get("langfuse.observation.type")

    def metadata(self, key: str) -> Any:
        """An observation metadata value (the SDK JSON-encodes each one)."""
        return _json_or_raw(self.attributes.get(f"langfuse.observation.metadata.{key}"))

    def trace_metadata(self, key: str) -> Any:
        """A trace metadata value (propagated or set on the span)."""
        return _json_or_raw(self.attributes.get(f"langfuse.trace.metadata.{key}"))

    def json(self, key: str) -> Any:
        """A JSON attribute (input, output, usage_details...) by its short name."""
        return _json_or_raw(self.attributes.get(f"langfuse.observation.{key}"))

    def child(self, name: str) -> ExportedSpan:
        """The one child of this name."""
        found = [c for c in self.children if c.name == name]
        assert len(found) == 1, (
            f"{self.name} has children {[c.name for c in self.children]}, not one {name!r}"
        )
        return found[0]

    def render(self, keys: tuple[str, ...] = (), indent: int = 0) -> str:
        """The subtree as indented text: name, type and the attributes named in ``keys``."""
        shown = {k: v for k, v in self.attributes.items() if any(k.endswith(s) for s in keys)}
        line = f"{'  ' * indent}{self.name} [{self.type}] {self.seconds * 1000:.1f} ms {shown or ''}"
        return "\n".join([line.rstrip(), *(c.render(keys, indent + 1) for c in self.children)])


def _json_or_raw(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in v.kvlist_value.values}
    return getattr(v, kind) if kind else None


def decode_export(body: bytes) -> list[ExportedSpan]:
    """The spans of one OTLP/HTTP protobuf export body."""
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans = []
    for rs in request.resource_spans:
        resource = {kv.key: _value(kv.value) for kv in rs.resource.attributes}
        for ss in rs.scope_spans:
            for s in ss.spans:
                spans.append(
                    ExportedSpan(
                        trace_id=s.trace_id.hex(),
                        span_id=s.span_id.hex(),
                        parent_id=s.parent_span_id.hex() or None,
                        name=s.name,
                        attributes={kv.key: _value(kv.value) for kv in s.attributes},
                        start_ns=s.start_time_unix_nano,
                        end_ns=s.end_time_unix_nano,
                        scope=ss.scope.name,
                        resource=resource,
                    )
                )
    return spans


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up on a held request: expected, not a failure


class LangfuseServer:
    """Run as a context manager; ``url`` is the base URL to give the SDK."""

    def __init__(self, *, public_key: str | None = None, secret_key: str | None = None) -> None:
        self.public_key = public_key
        self.secret_key = secret_key
        self.requests: list[RecordedRequest] = []
        self.spans: list[ExportedSpan] = []
        self.scores: list[dict[str, Any]] = []
        self.prompts: dict[str, dict[str, Any]] = {}  # name -> Langfuse prompt object
        self.gzipped_exports = 0
        self._lock = threading.Lock()
        self._open = threading.Event()
        self._open.set()
        self._server = _QuietServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="langfuse-peer", daemon=True)

    # -- lifecycle -------------------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LangfuseServer:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def hang(self) -> None:
        """Every request waits (connection open, no answer) until :meth:`release`."""
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    # -- reading what arrived --------------------------------------------------------------------------------
    def add_prompt(
        self, name: str, prompt: str, *, version: int = 1, labels: tuple[str, ...] = ("production",)
    ) -> None:
        self.prompts[name] = {
            "type": "text",
            "name": name,
            "prompt": prompt,
            "version": version,
            "config": {},
            "labels": list(labels),
            "tags": [],
        }

    def wait_for(self, predicate: Callable[[LangfuseServer], bool], timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if predicate(self):
                    return True
            time.sleep(0.02)
        return False

    def traces(self) -> dict[str, list[ExportedSpan]]:
        """Spans by trace id."""
        out: dict[str, list[ExportedSpan]] = {}
        for span in self.spans:
            out.setdefault(span.trace_id, []).append(span)
        return out

    def roots(self, name: str | None = None) -> list[ExportedSpan]:
        """The root span of every trace (named ``name``), with ``children`` linked, oldest first."""
        by_id = {s.span_id: s for s in self.spans}
        for s in self.spans:
            s.children = []
        for s in sorted(self.spans, key=lambda s: s.start_ns):
            if s.parent_id and s.parent_id in by_id:
                by_id[s.parent_id].children.append(s)
        roots = [s for s in self.spans if not s.parent_id or s.parent_id not in by_id]
        return sorted((r for r in roots if name is None or r.name == name), key=lambda s: s.start_ns)

    def walk(self, root: ExportedSpan) -> Iterator[ExportedSpan]:
        yield root
        for child in root.children:
            yield from self.walk(child)

    # -- the handler -----------------------------------------------------------------------------------------
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        peer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def _body(self) -> bytes:
                length = int(self.headers.get("content-length") or 0)
                data = self.rfile.read(length) if length else b""
                if self.headers.get("content-encoding", "").lower() == "gzip":
                    data = gzip.decompress(data)
                    with peer._lock:
                        peer.gzipped_exports += 1
                return data

            def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _json(self, status: int, obj: Any) -> None:
                self._send(status, json.dumps(obj).encode())

            def _authorized(self) -> bool:
                if peer.public_key is None:
                    return True
                expected = base64.b64encode(f"{peer.public_key}:{peer.secret_key}".encode()).decode()
                return self.headers.get("authorization") == f"Basic {expected}"

            def _record(self, size: int) -> None:
                with peer._lock:
                    peer.requests.append(
                        RecordedRequest(
                            self.command,
                            self.path,
                            {k.lower(): v for k, v in self.headers.items()},
                            size,
                        )
                    )

            def do_POST(self) -> None:
                peer._open.wait()
                body = self._body()
                self._record(len(body))
                path = urlsplit(self.path).path
                if not self._authorized():
                    return self._json(401, {"message": "Invalid credentials"})
                if path == OTLP_PATH:
                    spans = decode_export(body)
                    with peer._lock:
                        peer.spans.extend(spans)
                    return self._send(
                        200, ExportTraceServiceResponse().SerializeToString(), "application/x-protobuf"
                    )
                if path == "/api/public/scores":
                    items = json.loads(body)
                    with peer._lock:
                        peer.scores.extend(items if isinstance(items, list) else [items])
                    return self._json(202, {"message": "Accepted"})
                if path == "/api/public/ingestion":
                    events = json.loads(body).get("batch", [])
                    with peer._lock:
                        peer.scores.extend(e["body"] for e in events if e.get("type") == "score-create")
                    return self._json(
                        207, {"successes": [{"id": e["id"], "status": 201} for e in events], "errors": []}
                    )
                return self._json(404, {"message": f"no route {path}"})

            def do_GET(self) -> None:
                peer._open.wait()
                self._record(0)
                parts = urlsplit(self.path)
                if not self._authorized():
                    return self._json(401, {"message": "Invalid credentials"})
                prefix = "/api/public/v2/prompts/"
                if parts.path.startswith(prefix):
                    name = unquote(parts.path[len(prefix) :])
                    label = (parse_qs(parts.query).get("label") or ["production"])[0]
                    prompt = peer.prompts.get(name)
                    if prompt is None or label not in prompt["labels"]:
                        return self._json(
                            404, {"message": f"prompt {name!r} not found", "error": "LangfuseNotFoundError"}
                        )
                    return self._json(200, prompt)
                return self._json(404, {"message": f"no route {parts.path}"})

        return Handler
