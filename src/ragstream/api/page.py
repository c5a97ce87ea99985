"""The web page (``GET /``) and its assets (``GET /ui/<name>``), from :mod:`ragstream.web`.

Open to anyone: the page holds no data, and its calls to the API carry the key the user enters.
Each file has an ETag; a client whose copy is current gets a 304 without the body.
"""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.exceptions import NotFoundError

from .. import web


def page_file(name: str, if_none_match: str | None) -> Response:
    """A file of the web page, or 304 when the client's copy (``If-None-Match``) is current."""
    item = web.asset(name)
    if item is None:
        raise NotFoundError(f"no file {name!r}")
    headers = web.headers_for(item)
    if if_none_match and item.etag in {tag.strip() for tag in if_none_match.split(",")}:
        del headers["Content-Type"]
        return Response(status_code=304, headers=headers, compress=False)
    return Response(
        status_code=200, content_type=item.content_type, body=item.body.decode("utf-8"), headers=headers
    )


def router() -> Router:
    """The page routes; they need nothing of the app but the request's headers."""
    routes = Router()

    @routes.get("/", include_in_schema=False, enable_validation=False, compress=True)
    def page():  # type: ignore[no-untyped-def]  # no annotation: Powertools would validate it
        return page_file(web.INDEX, routes.current_event.get_header_value("if-none-match"))

    @routes.get(f"{web.ASSETS_PREFIX}<name>", include_in_schema=False, enable_validation=False, compress=True)
    def page_asset(name: str):  # type: ignore[no-untyped-def]
        if name == web.INDEX:  # the page has one address: /
            raise NotFoundError(f"no file {name!r}")
        return page_file(name, routes.current_event.get_header_value("if-none-match"))

    return routes
