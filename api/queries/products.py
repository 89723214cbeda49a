"""One product: product_summary.sql + product_sellers.sql (priority order, with histories),
each with the deals marts' window lows (and per seller the current discount)."""

from __future__ import annotations

import json
from typing import Any

from api.db import Executor
from api.encoding import money, timestamp
from api.queries import JsonObject, load_sql
from api.queries.deals import badges

WINDOWS = ("30d", "90d", "365d")

SUMMARY_SQL = load_sql("product_summary")
SELLERS_SQL = load_sql("product_sellers")


async def product_summary(db: Executor, slug: str) -> JsonObject | None:
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


def seller_discount(r: Any) -> JsonObject | None:
    if r["discount_percent"] is None:
        return None
    return {
        "prior_price": money(r["prior_price"]),
        "percent": float(r["discount_percent"]),
        "reduced_at": timestamp(r["reduced_at"]),
    }


async def product_sellers(db: Executor, slug: str) -> list[JsonObject]:
    """One api.schemas.SellerOffer per seller."""
    rows = await db.fetch("product_sellers", SELLERS_SQL, slug)
    return [
        dict(
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


async def product(db: Executor, slug: str) -> JsonObject | None:
    """Summary + sellers (api.schemas.Product); pass a Session to run both on one
    connection."""
    summary = await product_summary(db, slug)
    if summary is None:
        return None
    sellers = await product_sellers(db, slug)
    return {**summary, "sellers": sellers}
