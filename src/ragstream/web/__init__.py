"""The web page of the query API: static files shipped in this package, served at ``GET /``.

``index.html`` is the page; ``app.css``, ``app.js`` and ``icon.svg`` are its assets, served under
:data:`ASSETS_PREFIX`. There is no build step and nothing is fetched from elsewhere: the page, its
assets and the API share one origin. Files are read once per process with :mod:`importlib.resources`.

Every answer carries a strict Content-Security-Policy (scripts only from this origin, no inline
script or style, Trusted Types required so that no script can assign HTML from a string), and a weak
ETag: browsers revalidate (``Cache-Control: no-cache``) and get 304 while the files are unchanged.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

__all__ = ["ASSETS_PREFIX", "INDEX", "SECURITY_HEADERS", "Asset", "asset", "headers_for"]

#: The URL path under which the page's assets are served (the page itself is at ``/``).
ASSETS_PREFIX = "/ui/"
#: The page's own file name.
INDEX = "index.html"

_TYPES = {
    INDEX: "text/html; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "icon.svg": "image/svg+xml",
}

#: Sent with the page and every asset.
SECURITY_HEADERS = {
    "Content-Security-Policy": "; ".join(
        (
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self'",
            "connect-src 'self'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
            "require-trusted-types-for 'script'",
            "trusted-types 'none'",
        )
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cache-Control": "no-cache",
    "Vary": "Accept-Encoding",
}


@dataclass(frozen=True)
class Asset:
    """One file of the page: its bytes, its media type and its entity tag."""

    name: str
    body: bytes
    content_type: str

    @property
    def etag(self) -> str:
        """A weak validator (the body may be sent gzipped) from the content."""
        return f'W/"{hashlib.sha256(self.body).hexdigest()[:20]}"'


@cache
def asset(name: str) -> Asset | None:
    """The packaged file ``name`` (only the page's own files), or None."""
    content_type = _TYPES.get(name)
    if content_type is None:
        return None
    body = files(__name__).joinpath(name).read_bytes()
    return Asset(name=name, body=body, content_type=content_type)


def headers_for(item: Asset) -> dict[str, str]:
    """The response headers of ``item``."""
    return {**SECURITY_HEADERS, "Content-Type": item.content_type, "ETag": item.etag}
