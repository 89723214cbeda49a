"""GET /api/v1/search/suggest"""

from __future__ import annotations

from sanic import Blueprint, HTTPResponse, Request
from sanic_ext import openapi

from api import reads, schemas
from api.cache import Cache
from api.db import Database
from api.http import cached_response
from api.params import ParseMemo, parse_suggest
from api.routes import inject
from api.routes.docs import (
    AVAILABILITY,
    CACHE_HEADERS,
    POLICY,
    apply,
    error_responses,
    integer,
    json_of,
    string,
)

_parse_suggest = ParseMemo(parse_suggest)


@apply(
    openapi.summary("Type-ahead suggestions"),
    openapi.description(
        "Accent- and case-insensitive. Names starting with q first, then names with a word "
        "starting with q, then other substring matches, then trigram-similar names (tolerates "
        "a typo). An empty list when nothing matches." + POLICY + CACHE_HEADERS
        + " Cached 60 s."
    ),
    openapi.tag("search"),
    openapi.parameter(
        "q", string(minLength=1, maxLength=100), "query", required=True,
        description="Search text, 1-100 characters after trimming",
    ),
    openapi.parameter(
        "availability", AVAILABILITY, "query", allowEmptyValue=True,
        description="As in /catalog",
    ),
    openapi.parameter(
        "limit", integer(minimum=1, maximum=20, default=8), "query", allowEmptyValue=True,
        description="Maximum number of suggestions",
    ),
    openapi.response(200, json_of(schemas.SuggestList), "Suggestions, best first"),
    *error_responses(400),
)
@inject
async def get_suggest(request: Request, db: Database, cache: Cache) -> HTTPResponse:
    query = _parse_suggest(request.query_string, lambda: request.args)
    return cached_response(request, await reads.suggestions(cache, db, query))


def blueprint() -> Blueprint:
    bp = Blueprint("search", url_prefix="/api/v1")
    bp.add_route(get_suggest, "/search/suggest", methods=["GET"], name="suggest")
    return bp
