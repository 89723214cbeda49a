"""GET /api/v1/deals"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from sanic import Blueprint, HTTPResponse, Request
from sanic_ext import openapi

from api import reads, schemas
from api.cache import Cache
from api.db import Database
from api.http import cached_response
from api.params import (
    MAX_PAGE,
    SLUG_RE,
    Args,
    ParseMemo,
    bad,
    parse_categories,
    parse_choice,
    parse_int,
)
from api.queries.deals import AVAILABILITY_FLAGS, DealFilters
from api.routes import inject
from api.routes.docs import (
    CACHE_HEADERS,
    POLICY,
    apply,
    error_responses,
    json_of,
    number,
    page_parameters,
    string,
)

DEAL_AVAILABILITY = tuple(AVAILABILITY_FLAGS)
SELLER_RE = re.compile(r"[A-Za-z0-9._-]{1,100}")
FILTER_PARAMS = ("min_discount", "categories", "availability", "seller")


@dataclass(frozen=True)
class DealsQuery:
    filters: DealFilters
    page: int
    page_size: int


def parse_filters(args: Args) -> DealFilters:
    raw = args.get("min_discount")
    min_discount = Decimal("10.0")
    if raw is not None:
        text = raw.strip()
        if not re.fullmatch(r"\d{1,3}(\.\d)?", text) or Decimal(text) > 100:
            raise bad("min_discount", "must be a number 0-100 with at most 1 decimal", raw)
        min_discount = Decimal(text).quantize(Decimal("0.1"))
    availability = parse_choice(args, "availability", DEAL_AVAILABILITY, "any") or "any"
    seller = args.get("seller")
    if seller is not None:
        seller = seller.strip()
        if not SELLER_RE.fullmatch(seller):
            raise bad("seller", "letters, digits, '.', '_' and '-', 1-100 characters", seller)
    return DealFilters(min_discount, availability, parse_categories(args), seller)


def parse_deals(raw: Mapping[str, Sequence[str]]) -> DealsQuery:
    args = Args(raw, ("page", "page_size", *FILTER_PARAMS))
    page = parse_int(args, "page", 1, 1, MAX_PAGE)
    page_size = parse_int(args, "page_size", 24, 1, 100)
    return DealsQuery(parse_filters(args), page, page_size)


def parse_feed(raw: Mapping[str, Sequence[str]]) -> DealFilters:
    return parse_filters(Args(raw, FILTER_PARAMS))


_parse_deals = ParseMemo(parse_deals)

FILTER_DOCS = [
    openapi.parameter(
        "min_discount", number(minimum=0, maximum=100, default=10), "query",
        allowEmptyValue=True,
        description="Smallest discount_percent listed (0-100, at most 1 decimal; default 10)",
    ),
    openapi.parameter(
        "categories", str, "query", allowEmptyValue=True,
        description="Comma-separated categories; the product must carry all of them (normalized)",
    ),
    openapi.parameter(
        "availability", string(enum=list(DEAL_AVAILABILITY), default="any"), "query",
        allowEmptyValue=True,
        description="any | available | preorder (a deal is always one of the two)",
    ),
    openapi.parameter(
        "seller", string(maxLength=100), "query", allowEmptyValue=True,
        description="Only this seller's deals",
    ),
]
DEFINITIONS = (
    " A deal is a seller's current reduction (the latest change of its price in force, a "
    "lower price, not raised since) measured against the EU prior price: the lowest price in "
    "force during the 30 days before the reduction (Directive 98/6/EC Art. 6a). Listed only "
    "when the seller's history covers those 30 days, the offer is available or preorder and "
    "the price is below the prior price: a 'sale' at or above it (a fake sale) never appears."
)


@apply(
    openapi.summary("Current real price reductions, biggest discount first"),
    openapi.description(
        "Ordered by discount_percent desc, then slug, seller." + DEFINITIONS + POLICY
        + CACHE_HEADERS + " Cached 300 s."
    ),
    openapi.tag("deals"),
    *page_parameters(),
    *FILTER_DOCS,
    openapi.response(200, json_of(schemas.DealsPage), "A page of deals"),
    *error_responses(400),
)
@inject
async def get_deals(request: Request, db: Database, cache: Cache) -> HTTPResponse:
    query = _parse_deals(request.query_string, lambda: request.args)
    return cached_response(
        request, await reads.deals_page(cache, db, query.filters, query.page, query.page_size)
    )


MAX_BADGE_SLUGS = 100
#: a catalog page of slugs fits well below the 8 KiB request-line limit (REQUEST_MAX_HEADER_SIZE)
MAX_BADGE_SLUGS_CHARS = 4000


def parse_badge_slugs(raw: Mapping[str, Sequence[str]]) -> tuple[str, ...]:
    args = Args(raw, ("slugs",))
    value = args.get("slugs")
    if value is None:
        raise bad("slugs", f"is required (1-{MAX_BADGE_SLUGS} comma-separated slugs)")
    if len(value) > MAX_BADGE_SLUGS_CHARS:
        raise bad("slugs", f"at most {MAX_BADGE_SLUGS_CHARS} characters", value)
    slugs = sorted({s.strip() for s in value.split(",")} - {""})
    if not slugs or len(slugs) > MAX_BADGE_SLUGS:
        raise bad("slugs", f"1-{MAX_BADGE_SLUGS} comma-separated slugs", value)
    for slug in slugs:
        if not SLUG_RE.fullmatch(slug):
            raise bad("slugs", "lower-case letters, digits and '-', 1-200 characters", slug)
    return tuple(slugs)


@apply(
    openapi.summary("Price badges of catalog cards"),
    openapi.description(
        "For up to 100 slugs (a catalog page), the badges of the slugs whose cheapest offered "
        "price is the market's lowest of 30, 90 or 365 days (history covering the window); "
        "slugs without a badge or unknown are left out." + POLICY + CACHE_HEADERS
        + " Cached 300 s."
    ),
    openapi.tag("deals"),
    openapi.parameter(
        "slugs", str, "query", required=True,
        description=f"Comma-separated slugs (1-100, at most {MAX_BADGE_SLUGS_CHARS} characters)",
    ),
    openapi.response(200, json_of(schemas.SlugBadgesList), "Badges per slug"),
    *error_responses(400),
)
@inject
async def get_badges(request: Request, db: Database, cache: Cache) -> HTTPResponse:
    slugs = parse_badge_slugs(request.args)
    return cached_response(request, await reads.deals_badges(cache, db, slugs))


def blueprint() -> Blueprint:
    bp = Blueprint("deals", url_prefix="/api/v1")
    bp.add_route(get_deals, "/deals", methods=["GET"], name="deals")
    bp.add_route(get_badges, "/deals/badges", methods=["GET"], name="deals_badges")
    return bp
