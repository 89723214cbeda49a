"""The one declaration of each response shape: these pydantic models make the OpenAPI document
(/docs/openapi.json), and from it the web UI's TypeScript types (web/src/api.gen.ts, `npm run
gen:api`). The handlers build plain dicts in api/queries and serialize them with orjson (no
pydantic work per request); tests/api/test_shapes.py validates every endpoint's answers against
these models, and ``extra="forbid"`` makes a key the model lacks fail there."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Shape(BaseModel):
    """Base of every response model: no undeclared keys."""

    model_config = ConfigDict(extra="forbid")


class ErrorInfo(Shape):
    code: str = Field(description="Stable machine-readable code, e.g. invalid_parameter")
    message: str = Field(description="Human-readable message; names the bad parameter")
    details: dict[str, Any] = Field(
        description="Extra context, e.g. {'parameter': 'page', 'value': '0'}"
    )


class Error(Shape):
    """The one error shape of every 4xx/5xx response."""

    error: ErrorInfo


class CatalogCard(Shape):
    slug: str = Field(description="product_name_normalized; the product page's id")
    name: str | None
    hero_image_url: str | None
    min_price: float | None = Field(
        description="Lowest current price among available sellers (else preorder sellers)"
    )
    min_price_seller: str | None
    seller_count: int
    is_available: bool
    is_preorder: bool
    categories: list[str]
    last_scraped_at: str | None = Field(description="UTC, ISO 8601 with Z")


class CatalogPage(Shape):
    items: list[CatalogCard]
    page: int
    page_size: int
    total: int = Field(description="Exact number of matching products")
    total_estimate: int = Field(
        description=(
            "Planner estimate of the matching products (EXPLAIN of the count query, run on "
            "the same connection as the page: table row count x the filters' selectivity "
            "from pg_stats, no rows read). Cheap, may be off; use total for exact figures."
        )
    )


class WindowLow(Shape):
    price: float | None = Field(
        description=(
            "Lowest price in force at any moment of [now - N days, now] (the price in force at "
            "the window's start counts); null when there was none"
        )
    )
    at: str | None = Field(
        description="The latest moment that price was in force in the window (now while it is)"
    )


class WindowLows(Shape):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    d30: WindowLow = Field(alias="30d")
    d90: WindowLow = Field(alias="90d")
    d365: WindowLow = Field(alias="365d")


class MarketLow(WindowLow):
    seller: str | None = Field(description="The seller of that low (ties: latest, then name)")


class MarketLows(Shape):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    d30: MarketLow = Field(alias="30d")
    d90: MarketLow = Field(alias="90d")
    d365: MarketLow = Field(alias="365d")


class Discount(Shape):
    prior_price: float = Field(
        description=(
            "EU prior price: the lowest price in force during the 30 days before the reduction"
        )
    )
    percent: float = Field(description="(prior - price) / prior x 100, one decimal")
    reduced_at: str = Field(description="When the current reduction happened (UTC)")


#: strongest first (api.queries.deals.BADGES)
Badge = Literal["lowest_ever", "lowest_365d", "lowest_90d", "lowest_30d"]
#: the catalog-card badges (/deals/badges): the market lows of a window
MarketBadge = Literal["lowest_365d", "lowest_90d", "lowest_30d"]

BADGES_DESCRIPTION = (
    "Subset of lowest_ever, lowest_365d, lowest_90d, lowest_30d (strongest first): the offer is "
    "available or preorder, its price equals that window's low, and its history covers the "
    "window (lowest_ever: at least 90 days)"
)


class SellerOffer(Shape):
    seller: str
    url: str | None
    product_codes: list[str]
    current_price: float | None = Field(description="Price in the seller's latest snapshot")
    availability_raw: str | None = Field(description="The seller's availability text as scraped")
    is_available: bool
    is_preorder: bool
    min_price: float | None = Field(description="Lowest price this seller ever had")
    max_price: float | None
    last_seen_at: str | None
    price_points: list[tuple[str, float | None, bool]] = Field(
        description=(
            "[scraped_at (UTC text), price (number|null), is_available] in time order: the "
            "first snapshot, every change of price or availability, and the latest snapshot"
        )
    )
    lows: WindowLows = Field(description="Window lows of this seller over 30/90/365 days")
    discount: Discount | None = Field(
        description=(
            "The current reduction measured against the EU prior price; null when there is "
            "none, the history is younger than 30 days before it, the offer is not available "
            "or preorder, or the price is not below the prior price (a fake sale)"
        )
    )
    badges: list[Badge] = Field(description=BADGES_DESCRIPTION)


class Product(Shape):
    slug: str
    name: str | None
    hero_image_url: str | None
    description: str | None
    categories: list[str]
    min_price: float | None
    min_price_seller: str | None
    lowest_price_ever: float | None
    lowest_price_ever_at: str | None
    seller_count: int
    is_available: bool
    is_preorder: bool
    first_seen_at: str | None
    last_scraped_at: str | None
    market_lows: MarketLows = Field(description="Lowest window low over all sellers")
    sellers: list[SellerOffer] = Field(
        description="One entry per seller: tlamagames, tlamagase, then the others"
    )


class Suggestion(Shape):
    slug: str
    name: str | None
    hero_image_url: str | None
    min_price: float | None
    is_available: bool
    is_preorder: bool


class SuggestList(Shape):
    items: list[Suggestion]


class CategoryCount(Shape):
    name: str = Field(description="Normalized (lower-case) category")
    count: int = Field(description="Number of products carrying it")


class CategoryList(Shape):
    items: list[CategoryCount]


class RecentSnapshot(Shape):
    slug: str | None
    seller: str | None
    price: float | None
    previous_price: float | None = Field(
        description="Price of the same seller's previous snapshot of the slug (null if none)"
    )
    availability_raw: str | None
    is_available: bool
    is_preorder: bool
    scraped_at: str | None


class RecentList(Shape):
    items: list[RecentSnapshot]


class Health(Shape):
    status: str


class Check(Shape):
    ok: bool
    detail: str | None = None


class Ready(Shape):
    status: str = Field(
        description="'ready', or 'degraded' when Redis is unreachable (answers then come "
        "straight from Postgres: still ready for traffic)"
    )
    generation: int | None = Field(
        description="Id of the published build the API reads (catalog_build_info.build_id); "
        "cache keys embed it"
    )
    role: str | None = Field(
        description="'replica' when the API reads a hot standby, 'primary' otherwise "
        "(null when Postgres is unreachable)"
    )
    replay_lag_seconds: float | None = Field(
        description="How far the replica's replay is behind (now - last replayed commit), 0 "
        "when it has replayed everything it received; 0 on a primary"
    )
    checks: dict[str, Check]
    data_age_seconds: float | None
    data_as_of: str | None
    published_at: str | None


class DealItem(Shape):
    slug: str
    name: str | None
    seller: str
    price: float = Field(description="The price in force now")
    prior_price: float = Field(
        description="Lowest price in force during the 30 days before the reduction"
    )
    discount_percent: float = Field(description="(prior - price) / prior x 100, one decimal")
    reduced_at: str = Field(description="When the price was reduced (UTC)")
    is_available: bool
    is_preorder: bool
    badges: list[Badge] = Field(description=BADGES_DESCRIPTION)


class DealsPage(Shape):
    items: list[DealItem]
    page: int
    page_size: int
    total: int = Field(description="Exact number of matching deals")


class SlugBadges(Shape):
    slug: str
    badges: list[MarketBadge] = Field(
        description=(
            "Subset of lowest_365d, lowest_90d, lowest_30d: the product's cheapest offered "
            "price equals the market low of that window and its history covers the window"
        )
    )


class SlugBadgesList(Shape):
    items: list[SlugBadges] = Field(description="Only the requested slugs that have a badge")
