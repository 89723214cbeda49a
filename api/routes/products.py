"""GET /api/v1/products/{slug}"""

from __future__ import annotations

from sanic import Blueprint, HTTPResponse, Request
from sanic_ext import openapi

from api import reads, schemas
from api.cache import Cache
from api.db import Database
from api.http import cached_response
from api.params import parse_none, parse_slug
from api.routes import inject
from api.routes.docs import (
    CACHE_HEADERS,
    POLICY,
    apply,
    error_responses,
    json_of,
    string,
)


@apply(
    openapi.summary("One product with every seller's offer and price history"),
    openapi.description(
        "Summary fields plus `sellers` in priority order (tlamagames, tlamagase, then the "
        "others); each seller has its own `price_points`, so the histories stay parallel for "
        "a multi-seller graph." + POLICY + CACHE_HEADERS + " Cached 300 s (404s too)."
    ),
    openapi.tag("products"),
    openapi.parameter(
        "slug", string(pattern="^[a-z0-9-]{1,200}$", maxLength=200), "path",
        description="product_name_normalized: lower-case letters, digits and '-'",
    ),
    openapi.response(200, json_of(schemas.Product), "The product"),
    *error_responses(400, 404),
)
@inject
async def get_product(request: Request, slug: str, db: Database, cache: Cache) -> HTTPResponse:
    parse_none(request.args)
    return cached_response(request, await reads.product(cache, db, parse_slug(slug)))


def blueprint() -> Blueprint:
    bp = Blueprint("products", url_prefix="/api/v1")
    bp.add_route(get_product, "/products/<slug:str>", methods=["GET"], name="product")
    return bp
