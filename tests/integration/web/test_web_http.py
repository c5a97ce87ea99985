"""The web page over real HTTP (the local server of conftest.py, which requires an API key): what is
served at ``GET /`` and under ``/ui/``, with which headers, and what stays closed.

What the page does in a browser is tested in ``test_web_browser.py``.
"""

from __future__ import annotations

import gzip
import re

import httpx
import pytest

from ragstream import web

API_KEY = "test-api-key"  # a placeholder, the one the test app of conftest.py requires


def test_the_page_is_open_and_its_assets_are_same_origin(live_server: str) -> None:
    # WHEN the page is fetched without a key
    response = httpx.get(f"{live_server}/")

    # THEN it is the packaged HTML, and everything it loads is under /ui/ on this origin
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    html = response.text
    assert html.startswith("<!doctype html>") and "<title>ragstream</title>" in html
    loaded = re.findall(r'(?:src|href)="([^"#]+)"', html)
    assert set(loaded) == {"ui/icon.svg", "ui/app.css", "ui/app.js"}
    assert "<script>" not in html  # no inline script: the policy would block it
    assert not re.search(r"<[^>]*\s(?:on\w+|style)=", html)  # no inline handlers or styles
    for path in loaded:
        asset = httpx.get(f"{live_server}/{path}")
        assert asset.status_code == 200, path
        assert asset.content == web.asset(path.removeprefix("ui/")).body  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/", "text/html; charset=utf-8"),
        ("/ui/app.js", "text/javascript; charset=utf-8"),
        ("/ui/app.css", "text/css; charset=utf-8"),
        ("/ui/icon.svg", "image/svg+xml"),
    ],
)
def test_page_files_carry_a_strict_policy(live_server: str, path: str, content_type: str) -> None:
    headers = httpx.get(f"{live_server}{path}").headers
    assert headers["content-type"] == content_type
    policy = dict(part.strip().split(" ", 1) for part in headers["content-security-policy"].split(";"))
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == "'self'" and policy["style-src"] == "'self'"  # no inline script or style
    assert policy["connect-src"] == "'self'" and policy["frame-ancestors"] == "'none'"
    assert policy["require-trusted-types-for"] == "'script'"  # no HTML from strings, even by mistake
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["cache-control"] == "no-cache"
    assert headers["etag"].startswith('W/"')


def test_an_unchanged_file_is_not_sent_again(live_server: str) -> None:
    first = httpx.get(f"{live_server}/ui/app.js")
    again = httpx.get(f"{live_server}/ui/app.js", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    other = httpx.get(f"{live_server}/ui/app.js", headers={"If-None-Match": 'W/"something-else"'})
    assert other.status_code == 200 and other.content == first.content


def test_page_files_are_gzipped_for_clients_that_accept_it(live_server: str) -> None:
    script = web.asset("app.js")
    assert script is not None
    with httpx.stream("GET", f"{live_server}/ui/app.js", headers={"Accept-Encoding": "gzip"}) as response:
        raw = b"".join(response.iter_raw())
    assert response.headers["content-encoding"] == "gzip"
    assert gzip.decompress(raw) == script.body
    assert len(raw) < len(script.body) / 2


@pytest.mark.parametrize("path", ["/ui/nothing.js", "/ui/index.html", "/ui/..%2Fapi.py", "/ui/__init__.py"])
def test_only_the_page_files_are_served(live_server: str, path: str) -> None:
    response = httpx.get(f"{live_server}{path}")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"


def test_the_api_stays_closed_and_the_page_stays_out_of_the_openapi_document(live_server: str) -> None:
    assert httpx.post(f"{live_server}/search", json={"query": "x"}).status_code == 401
    assert httpx.get(f"{live_server}/documents").status_code == 401
    assert httpx.post(f"{live_server}/", json={}).status_code == 404
    doc = httpx.get(f"{live_server}/openapi.json").json()
    assert "/" not in doc["paths"] and not any(p.startswith("/ui") for p in doc["paths"])


def test_health_tells_the_page_whether_feedback_is_recorded(live_server: str) -> None:
    # the test app records feedback with a sink of its own
    assert httpx.get(f"{live_server}/health").json()["feedback"] is True
