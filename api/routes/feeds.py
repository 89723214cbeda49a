"""GET /feeds/deals.atom"""

from __future__ import annotations

from sanic import Blueprint, HTTPResponse, Request
from sanic_ext import openapi

from api import reads
from api.cache import Cache
from api.db import Database
from api.http import etag_matches, gzip_etag
from api.routes import inject
from api.routes.deals import DEFINITIONS, FILTER_DOCS, parse_feed
from api.routes.docs import POLICY, apply, error_responses

ATOM = "application/atom+xml"


@apply(
    openapi.summary("Atom 1.0 feed of the current deals"),
    openapi.description(
        "One entry per current deal (as /api/v1/deals, highest discount first, at most "
        f"{reads.FEED_MAX_ENTRIES}): id = tag URI of slug, seller and reduction time (stable), "
        "updated = reduction time, Czech title with the price and discount, link to "
        "/p/{slug}." + DEFINITIONS + POLICY + " ETag / If-None-Match; cached 300 s."
    ),
    openapi.tag("deals"),
    *FILTER_DOCS,
    openapi.response(200, {ATOM: str}, "The Atom document"),
    *error_responses(400),
)
@inject
async def get_deals_feed(request: Request, db: Database, cache: Cache) -> HTTPResponse:
    filters = parse_feed(request.args)
    entry = (await reads.deals_feed(cache, db, filters)).entry
    headers = {
        "ETag": entry.etag,
        "Cache-Control": f"public, max-age={entry.ttl}",
        "Vary": "Accept-Encoding",
    }
    if etag_matches(request.headers.get("if-none-match"), entry.etag, gzip_etag(entry.etag)):
        return HTTPResponse(status=304, headers=headers)
    return HTTPResponse(
        entry.body, status=entry.status, headers=headers,
        content_type=f"{ATOM}; charset=utf-8",
    )


def blueprint() -> Blueprint:
    bp = Blueprint("feeds", url_prefix="/feeds")
    bp.add_route(get_deals_feed, "/deals.atom", methods=["GET"], name="deals_atom")
    return bp
