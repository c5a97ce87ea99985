"""How a peer serves HTTP: a ThreadingHTTPServer on 127.0.0.1 and a free port, in a daemon thread;
and a peer's lifecycle: ``start()``/``stop()``, or a ``with`` block."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


class ServedHTTP:
    """A peer's HTTP server, serving from construction until :meth:`close`."""

    def __init__(
        self,
        handler: type[BaseHTTPRequestHandler],
        *,
        name: str,
        server_class: type[ThreadingHTTPServer] = ThreadingHTTPServer,
    ) -> None:
        self.httpd = server_class(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, name=name, daemon=True
        )
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        """Stop serving, close the socket and join the thread."""
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)


class JSONHandler(BaseHTTPRequestHandler):
    """A peer's request handler: HTTP/1.1 keep-alive, quiet (a peer records what it needs), and JSON
    replies (``None``: an empty body)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


class Peer:
    """A peer's ``with`` block: started on entry, stopped on exit."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()


class HTTPPeer(Peer):
    """A peer served by one request-handler class, which reaches the peer as ``self.owner``."""

    _served: ServedHTTP | None = None
    _name = "peer"

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        if self._served is None:
            raise RuntimeError("the server is not started")
        return self._served.url

    @property
    def port(self) -> int:
        if self._served is None:
            raise RuntimeError("the server is not started")
        return self._served.port

    def start(self) -> Self:
        handler = type("Handler", (self._handler_class(),), {"owner": self})
        self._served = ServedHTTP(handler, name=self._name)
        return self

    def stop(self) -> None:
        if self._served is not None:
            self._served.close()
            self._served = None
