"""``ragstream serve``: the query API on a local HTTP server, through the very resolver the Lambda runs.

Each HTTP request becomes an API Gateway HTTP API event (payload format 2.0), is resolved by the app
of :func:`ragstream.api.build_app`, and its response (statusCode, headers, cookies, body,
isBase64Encoded) is written back.

Requests are resolved at once, one thread per connection (the app keeps its per-request state per
thread); only a writer in the same process (``ragstream dev``'s ingest loop) takes the lock
exclusively. The listen backlog holds bursts of connections; a client that stops sending half-way
through its request is dropped after ``READ_TIMEOUT_SECONDS``; a body comes with a Content-Length or
plain ``Transfer-Encoding: chunked``, and anything else is refused with the connection closed, so
that no body can be read as a second request.
"""

from __future__ import annotations

import base64
import json
import logging
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

if TYPE_CHECKING:
    from .config import Settings

__all__ = ["LocalContext", "make_server", "serve", "to_event"]

log = logging.getLogger(__name__)

#: Bodies above this are refused unread when the app names no limit of its own.
FALLBACK_MAX_BODY_BYTES = 10 * 1024 * 1024
#: Connections the kernel queues while every thread is busy accepting (socketserver's default is 5).
LISTEN_BACKLOG = 1024
#: Seconds a connection may stay silent while its request is read (headers or body) or kept alive.
READ_TIMEOUT_SECONDS = 30.0
_TEXT_TYPES = ("text/", "application/json", "application/x-www-form-urlencoded", "application/xml")


class LocalContext:
    """The parts of a Lambda context that Powertools and our handlers read (for a function run on
    this machine: ``ragstream serve`` and ``ragstream dev``)."""

    function_version = "$LATEST"
    memory_limit_in_mb = 0

    def __init__(self, name: str = "ragstream-query-local") -> None:
        self.function_name = name
        self.invoked_function_arn = f"arn:aws:lambda:local:000000000000:function:{name}"
        self.aws_request_id = str(uuid.uuid4())

    def get_remaining_time_in_millis(self) -> int:
        return 900_000


def to_event(
    method: str,
    target: str,
    headers: list[tuple[str, str]],
    body: bytes,
    *,
    source_ip: str = "127.0.0.1",
    host: str = "localhost",
) -> dict[str, Any]:
    """One HTTP request as an API Gateway HTTP API v2.0 event, as the HTTP API would send it."""
    split = urlsplit(target)
    raw_path = split.path or "/"
    merged: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        key = name.lower()
        if key == "cookie":
            cookies.extend(c.strip() for c in value.split(";") if c.strip())
            continue
        merged[key] = f"{merged[key]},{value}" if key in merged else value
    query: dict[str, str] = {}
    for name, value in parse_qsl(split.query, keep_blank_values=True):
        query[name] = f"{query[name]},{value}" if name in query else value
    now = time.time()
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path,
        "rawQueryString": split.query,
        "headers": merged,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": host,
            "domainPrefix": host.split(".")[0],
            "http": {
                "method": method.upper(),
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": merged.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": formatdate(now, usegmt=True),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = query
    if body:
        content_type = merged.get("content-type", "")
        text: str | None = None
        if not content_type or content_type.startswith(_TEXT_TYPES):
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                text = None
        if text is None:
            event["body"] = base64.b64encode(body).decode("ascii")
            event["isBase64Encoded"] = True
        else:
            event["body"] = text
    return event


class SharedLock:
    """Many holders in shared mode (requests) or one in exclusive mode (a writer); writers go first."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._writer and not self._writers_waiting)
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            try:
                self._cond.wait_for(lambda: not self._writer and not self._readers)
            finally:
                self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = LISTEN_BACKLOG

    def __init__(
        self, address: tuple[str, int], app: Any, *, read_timeout: float = READ_TIMEOUT_SECONDS
    ) -> None:
        super().__init__(address, _Handler)
        self.app = app
        self.read_timeout = read_timeout
        #: Requests hold it shared; a writer of the same index in this process holds it exclusively.
        self.lock = SharedLock()
        self.max_body_bytes: int = int(getattr(app, "max_body_bytes", FALLBACK_MAX_BODY_BYTES))

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        name = host.decode() if isinstance(host, bytes) else host
        return f"http://{name}:{port}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms delayed-ACK stall
    server: _Server
    server_version = "ragstream"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.read_timeout)  # each read and write of the connection

    def do_GET(self) -> None:
        self._handle()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("do_"):  # any other method (TRACE, ...): the resolver answers it (404)
            return self._handle
        raise AttributeError(name)

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), format % args)

    def _handle(self) -> None:
        headers = [(k, v) for k, v in self.headers.items() if k.lower() != "transfer-encoding"]
        host = self.headers.get("host", "localhost").split(":")[0]
        encodings = self.headers.get_all("transfer-encoding") or []
        if encodings:
            self.close_connection = True  # whatever happens, nothing after this request is read
            if [e.strip().lower() for e in ",".join(encodings).split(",")] != ["chunked"]:
                self._write_error(501, "only Transfer-Encoding: chunked is supported")
                return
            if self.headers.get("content-length") is not None:
                self._write_error(400, "a request cannot have both Content-Length and Transfer-Encoding")
                return
            try:
                body = self._read_chunked(self.server.max_body_bytes)
            except _BodyTooLarge:
                self._reject_too_large(headers, host, self.server.max_body_bytes + 1)
                return
            except ValueError:
                self._write_error(400, "malformed chunked body")
                return
            self._resolve(headers, host, body)
            return
        lengths = {v.strip() for v in self.headers.get_all("content-length") or []}
        try:
            if len(lengths) > 1:
                raise ValueError
            length = int(lengths.pop()) if lengths else 0
            if length < 0:
                raise ValueError
        except ValueError:
            self.close_connection = True
            self._write_error(400, "invalid Content-Length")
            return
        if length > self.server.max_body_bytes:
            self._reject_too_large(headers, host, length)
            return
        body = self.rfile.read(length) if length else b""
        if len(body) < length:  # the client closed the connection half-way through its body
            self.close_connection = True
            return
        self._resolve(headers, host, body)

    def _reject_too_large(self, headers: list[tuple[str, str]], host: str, length: int) -> None:
        event = to_event(self.command, self.path, headers, b"", source_ip=self.client_address[0], host=host)
        too_large = getattr(self.server.app, "too_large", None)
        self.close_connection = True  # the unread body must not be parsed as the next request
        if too_large is not None:
            self._write(too_large(event, length))
        else:
            self._write_error(413, f"request body is {length} bytes")

    def _read_chunked(self, limit: int) -> bytes:
        """A ``Transfer-Encoding: chunked`` body (trailers read and dropped); at most ``limit`` bytes."""
        body = bytearray()
        while True:
            line = self.rfile.readline(1026)
            if not line.endswith(b"\n"):
                raise ValueError("chunk size line")
            size = int(line.split(b";", 1)[0].strip(), 16)  # ValueError when not hex
            if size < 0:
                raise ValueError("chunk size")
            if size == 0:
                break
            if len(body) + size > limit:
                raise _BodyTooLarge
            data = self.rfile.read(size)
            if len(data) < size or self.rfile.readline(3) not in (b"\r\n", b"\n"):
                raise ValueError("chunk data")
            body += data
        for _ in range(100):  # trailer fields, up to the empty line
            line = self.rfile.readline(8194)
            if line in (b"\r\n", b"\n"):
                return bytes(body)
            if not line.endswith(b"\n"):
                break
        raise ValueError("trailers")

    def _resolve(self, headers: list[tuple[str, str]], host: str, body: bytes) -> None:
        event = to_event(self.command, self.path, headers, body, source_ip=self.client_address[0], host=host)
        try:
            with self.server.lock.shared():
                result = self.server.app.resolve(event, LocalContext())
        except Exception:
            log.exception("unhandled error resolving %s %s", self.command, self.path)
            self._write_error(500, "internal error")
            return
        self._write(result)

    def _write_error(self, status: int, message: str) -> None:
        self._write(
            {
                "statusCode": status,
                "headers": {"Content-Type": "application/json"},
                "body": json.dumps({"statusCode": status, "message": message}),
            }
        )

    def _write(self, result: dict[str, Any]) -> None:
        body = result.get("body") or ""
        data = base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode("utf-8")
        self.send_response(int(result.get("statusCode", 200)))
        headers = {k: str(v) for k, v in (result.get("headers") or {}).items()}
        for name, values in (result.get("multiValueHeaders") or {}).items():
            for value in values:
                self.send_header(name, str(value))
        for name, value in headers.items():
            if name.lower() not in ("content-length", "connection"):
                self.send_header(name, value)
        for cookie in result.get("cookies") or []:
            self.send_header("Set-Cookie", str(cookie))
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


class _BodyTooLarge(Exception):
    """A chunked body grew past the limit."""


def make_server(
    app: Any, host: str = "127.0.0.1", port: int = 8000, *, read_timeout: float = READ_TIMEOUT_SECONDS
) -> _Server:
    """A threaded HTTP server over ``app`` (port 0: any free port); call ``serve_forever`` to run it."""
    return _Server((host, port), app, read_timeout=read_timeout)


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve the query API until interrupted; says so loudly when no API key protects it."""
    from .api import app_from_settings

    settings = settings.resolve_secrets()
    app = app_from_settings(settings)
    server = make_server(app, host, port)
    if settings.auth == "jwt":
        print(
            "WARNING: RAGSTREAM_AUTH=jwt: the claims come from API Gateway's JWT authorizer, which this "
            "local server does not have; every secured route answers 401. Use API keys locally.",
            file=sys.stderr,
        )
    elif app.is_open:
        print(
            f"WARNING: RAGSTREAM_API_KEY is not set: the API at {server.url} is open to anyone who can "
            "reach it. Set RAGSTREAM_API_KEY to require an x-api-key header.",
            file=sys.stderr,
        )
    print(
        f"ragstream API on {server.url}  (web page: {server.url}/; OpenAPI: {server.url}/openapi.json; "
        "Ctrl-C to stop)",
        file=sys.stderr,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
