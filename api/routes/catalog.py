"""GET /api/v1/catalog"""

from __future__ import annotations

from sanic import Blueprint, HTTPResponse, Request
from sanic_ext import openapi

from api import reads, schemas
from api.cache import Cache
from api.db import Database
from api.http import cached_response
from api.params import ParseMemo, parse_catalog
from api.routes import inject
from api.routes.docs import (
    AVAILABILITY,
    CACHE_HEADERS,
    POLICY,
    apply,
    error_responses,
    json_of,
    number,
    page_parameters,
    string,
)

_parse_catalog = ParseMemo(parse_catalog)


@apply(
    openapi.summary("List products (light cards), filtered, sorted and paginated"),
    openapi.description(
        "One row per product (slug). `total` is exact (count over the filtered products, "
        "computed by the page query itself); `total_estimate` is the planner's estimate for "
        "the same filters (EXPLAIN of the count query: table row count x the filters' "
        "selectivity from pg_stats, no rows read), what a client could show before counting. "
        "`sort=name` orders names as Czech readers expect (ICU cs collation: Č after C, "
        "Š after S). Sort ties are broken by slug, so pages are stable."
        + POLICY + CACHE_HEADERS + " Cached 120 s."
    ),
    openapi.tag("catalog"),
    *page_parameters(),
    openapi.parameter(
        "availability", AVAILABILITY, "query", allowEmptyValue=True,
        description="any | available (some seller has it) | preorder | unavailable",
    ),
    openapi.parameter(
        "min_price", number(minimum=0), "query", allowEmptyValue=True,
        description="Lowest min_price (>= 0, at most 2 decimals); must be <= max_price",
    ),
    openapi.parameter(
        "max_price", number(minimum=0), "query", allowEmptyValue=True,
        description="Highest min_price (>= 0, at most 2 decimals)",
    ),
    openapi.parameter(
        "categories", str, "query", allowEmptyValue=True,
        description=(
            "Comma-separated categories; a product must carry all of them. Compared in the "
            "normalized form (trimmed, whitespace collapsed, lower-case)"
        ),
    ),
    openapi.parameter(
        "q", string(maxLength=100), "query", allowEmptyValue=True,
        description=(
            "Search text (<= 100 chars): trimmed, whitespace collapsed, case- and "
            "accent-insensitive; every word must occur in the name or slug"
        ),
    ),
    openapi.parameter(
        "sort",
        string(enum=["name", "price_asc", "price_desc", "newest", "relevance"]),
        "query", allowEmptyValue=True,
        description=(
            "Default `relevance` when q is given, else `name`; `relevance` without q falls "
            "back to `name`. Prices sort missing prices last"
        ),
    ),
    openapi.response(200, json_of(schemas.CatalogPage), "A page of product cards"),
    *error_responses(400),
)
@inject
async def get_catalog(request: Request, db: Database, cache: Cache) -> HTTPResponse:
    query = _parse_catalog(request.query_string, lambda: request.args)
    return cached_response(request, await reads.catalog_page(cache, db, query))


def blueprint() -> Blueprint:
    bp = Blueprint("catalog", url_prefix="/api/v1")
    bp.add_route(get_catalog, "/catalog", methods=["GET"], name="catalog")
    return bp
