"""How a peer serves HTTP: a ThreadingHTTPServer on 127.0.0.1 and a free port, in a daemon thread."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


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
