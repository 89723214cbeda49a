"""One product: product_summary.sql + product_sellers.sql (priority order, with histories),
each with the deals marts' window lows (and per seller the current discount)."""

from __future__ import annotations

import json
from typing import Any, TypedDict

from api.db import Executor
from api.encoding import money, timestamp
from api.queries import load_sql
from api.queries.deals import badges

WINDOWS = ("30d", "90d", "365d")

SUMMARY_SQL = load_sql("product_summary")
SELLERS_SQL = load_sql("product_sellers")


class SellerOffer(TypedDict):
    seller: str
    url: str | None
    product_codes: list[str]
    current_price: float | None
    availability_raw: str | None
    is_available: bool
    is_preorder: bool
    min_price: float | None
    max_price: float | None
    last_seen_at: str | None
    price_points: list[list[Any]]
    lows: dict[str, Any]
    discount: dict[str, Any] | None
    badges: list[str]


class Product(TypedDict):
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
    market_lows: dict[str, Any]
    sellers: list[SellerOffer]


async def product_summary(db: Executor, slug: str) -> dict[str, Any] | None:
    r = await db.fetchrow("product_summary", SUMMARY_SQL, slug)
    if r is None:
        return None
    return {
        "slug": r["slug"],
        "name": r["name"],
        "hero_image_url": r["hero_image_url"],
        "description": r["description"],
        "categories": list(r["categories"] or []),
        "min_price": money(r["min_price"]),
        "min_price_seller": r["min_price_seller"],
        "lowest_price_ever": money(r["lowest_price_ever"]),
        "lowest_price_ever_at": timestamp(r["lowest_price_ever_at"]),
        "seller_count": int(r["seller_count"]),
        "is_available": bool(r["is_available"]),
        "is_preorder": bool(r["is_preorder"]),
        "first_seen_at": timestamp(r["first_seen_at"]),
        "last_scraped_at": timestamp(r["last_scraped_at"]),
        "market_lows": {
            w: {
                "price": money(r[f"low_{w}_price"]),
                "seller": r[f"low_{w}_seller"],
                "at": timestamp(r[f"low_{w}_at"]),
            }
            for w in WINDOWS
        },
    }


def seller_discount(r: Any) -> dict[str, Any] | None:
    if r["discount_percent"] is None:
        return None
    return {
        "prior_price": money(r["prior_price"]),
        "percent": float(r["discount_percent"]),
        "reduced_at": timestamp(r["reduced_at"]),
    }


async def product_sellers(db: Executor, slug: str) -> list[SellerOffer]:
    rows = await db.fetch("product_sellers", SELLERS_SQL, slug)
    return [
        SellerOffer(
            seller=r["seller"],
            url=r["url"],
            product_codes=list(r["product_codes"] or []),
            current_price=money(r["current_price"]),
            availability_raw=r["availability_raw"],
            is_available=bool(r["is_available"]),
            is_preorder=bool(r["is_preorder"]),
            min_price=money(r["min_price"]),
            max_price=money(r["max_price"]),
            last_seen_at=timestamp(r["last_seen_at"]),
            price_points=json.loads(r["price_points"]) if r["price_points"] else [],
            lows={
                w: {"price": money(r[f"low_{w}_price"]), "at": timestamp(r[f"low_{w}_at"])}
                for w in WINDOWS
            },
            discount=seller_discount(r),
            badges=badges(r) if r["is_lowest_30d"] is not None else [],
        )
        for r in rows
    ]


async def product(db: Executor, slug: str) -> Product | None:
    """Summary + sellers; pass a Session to run both on one connection."""
    summary = await product_summary(db, slug)
    if summary is None:
        return None
    sellers = await product_sellers(db, slug)
    result: Product = {**summary, "sellers": sellers}  # type: ignore[typeddict-item]
    return result
