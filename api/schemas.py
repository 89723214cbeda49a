"""Response schemas for the OpenAPI document (pydantic models, documentation only: the handlers
build plain dicts in api/queries and serialize them with orjson)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorInfo(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. invalid_parameter")
    message: str = Field(description="Human-readable message; names the bad parameter")
    details: dict[str, Any] = Field(
        description="Extra context, e.g. {'parameter': 'page', 'value': '0'}"
    )


class Error(BaseModel):
    """The one error shape of every 4xx/5xx response."""

    error: ErrorInfo


class CatalogCard(BaseModel):
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


class CatalogPage(BaseModel):
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


class SellerOffer(BaseModel):
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
    price_points: list[list[Any]] = Field(
        description=(
            "[scraped_at (UTC text), price (number|null), is_available] in time order: the "
            "first snapshot, every change of price or availability, and the latest snapshot"
        )
    )


class Product(BaseModel):
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
    sellers: list[SellerOffer] = Field(
        description="One entry per seller: tlamagames, tlamagase, then the others"
    )


class Suggestion(BaseModel):
    slug: str
    name: str | None
    hero_image_url: str | None
    min_price: float | None
    is_available: bool
    is_preorder: bool


class SuggestList(BaseModel):
    items: list[Suggestion]


class CategoryCount(BaseModel):
    name: str = Field(description="Normalized (lower-case) category")
    count: int = Field(description="Number of products carrying it")


class CategoryList(BaseModel):
    items: list[CategoryCount]


class RecentSnapshot(BaseModel):
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


class RecentList(BaseModel):
    items: list[RecentSnapshot]


class Health(BaseModel):
    status: str


class Check(BaseModel):
    ok: bool
    detail: str | None = None


class Ready(BaseModel):
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
