"""GET /api/v1/meta/categories and GET /api/v1/snapshots/recent"""

from __future__ import annotations

from sanic import Blueprint, HTTPResponse, Request
from sanic_ext import openapi

from api import reads, schemas
from api.cache import Cache
from api.db import Database
from api.http import cached_response
from api.params import ParseMemo, parse_none, parse_recent
from api.routes import inject
from api.routes.docs import (
    CACHE_HEADERS,
    POLICY,
    apply,
    error_responses,
    integer,
    json_of,
)

_parse_recent = ParseMemo(parse_recent)


@apply(
    openapi.summary("Every category with its product count"),
    openapi.description(
        "Ordered by count desc, then name. Takes no parameters." + POLICY + CACHE_HEADERS
        + " Cached 600 s."
    ),
    openapi.tag("meta"),
    openapi.response(200, json_of(schemas.CategoryList), "Categories"),
    *error_responses(400),
)
@inject
async def get_categories(request: Request, db: Database, cache: Cache) -> HTTPResponse:
    parse_none(request.args)
    return cached_response(request, await reads.category_list(cache, db))


@apply(
    openapi.summary("Newest raw snapshots with the previous price"),
    openapi.description(
        "Newest first (scraped_at desc, then id desc). previous_price is the same seller's "
        "previous snapshot price for the slug, for discount calculations." + POLICY
        + CACHE_HEADERS + " Cached 120 s."
    ),
    openapi.tag("snapshots"),
    openapi.parameter(
        "limit", integer(minimum=1, maximum=500, default=100), "query", allowEmptyValue=True,
        description="Number of snapshots",
    ),
    openapi.response(200, json_of(schemas.RecentList), "Snapshots, newest first"),
    *error_responses(400),
)
@inject
async def get_recent(request: Request, db: Database, cache: Cache) -> HTTPResponse:
    limit = _parse_recent(request.query_string, lambda: request.args)
    return cached_response(request, await reads.recent(cache, db, limit))


def blueprint() -> Blueprint:
    bp = Blueprint("meta", url_prefix="/api/v1")
    bp.add_route(get_categories, "/meta/categories", methods=["GET"], name="categories")
    bp.add_route(get_recent, "/snapshots/recent", methods=["GET"], name="recent")
    return bp
