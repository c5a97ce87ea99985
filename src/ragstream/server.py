"""``ragstream serve``: the query API on a local HTTP server, through the very resolver the Lambda runs.

Each HTTP request becomes an API Gateway HTTP API event (payload format 2.0), is resolved by the app
of :func:`ragstream.api.build_app`, and its response (statusCode, headers, cookies, body,
isBase64Encoded) is written back. Powertools' resolver keeps per-request state on the instance, so
requests are resolved one at a time (connections are still accepted by many threads).
"""

from __future__ import annotations

import base64
import json
import logging
import sys
import threading
import time
import uuid
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
_TEXT_TYPES = ("text/", "application/json", "application/x-www-form-urlencoded", "application/xml")


class LocalContext:
    """The parts of a Lambda context that Powertools and our handlers read."""

    function_name = "ragstream-query-local"
    function_version = "$LATEST"
    memory_limit_in_mb = 0
    invoked_function_arn = "arn:aws:lambda:local:000000000000:function:ragstream-query-local"

    def __init__(self) -> None:
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


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: Any) -> None:
        super().__init__(address, _Handler)
        self.app = app
        self.lock = threading.Lock()
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

    def do_GET(self) -> None:
        self._handle()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("do_"):  # any other method (TRACE, ...): the resolver answers it (404)
            return self._handle
        raise AttributeError(name)

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), format % args)

    def _handle(self) -> None:
        headers = list(self.headers.items())
        host = self.headers.get("host", "localhost").split(":")[0]
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            self._write_error(411, "send a Content-Length (chunked bodies are not supported)")
            return
        try:
            length = int(self.headers.get("content-length") or 0)
            if length < 0:
                raise ValueError
        except ValueError:
            self._write_error(400, "invalid Content-Length")
            return
        if length > self.server.max_body_bytes:
            event = to_event(
                self.command, self.path, headers, b"", source_ip=self.client_address[0], host=host
            )
            too_large = getattr(self.server.app, "too_large", None)
            self.close_connection = True  # the unread body must not be parsed as the next request
            if too_large is not None:
                self._write(too_large(event, length))
            else:
                self._write_error(413, f"request body is {length} bytes")
            return
        body = self.rfile.read(length) if length else b""
        event = to_event(self.command, self.path, headers, body, source_ip=self.client_address[0], host=host)
        try:
            with self.server.lock:
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


def make_server(app: Any, host: str = "127.0.0.1", port: int = 8000) -> _Server:
    """A threaded HTTP server over ``app`` (port 0: any free port); call ``serve_forever`` to run it."""
    return _Server((host, port), app)


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
        f"ragstream API on {server.url}  (OpenAPI: {server.url}/openapi.json; Ctrl-C to stop)",
        file=sys.stderr,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
