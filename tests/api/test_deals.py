"""GET /api/v1/deals, GET /feeds/deals.atom and the deals fields of /api/v1/products/{slug},
served by a real `pricecat serve` on the deals fixture database (tests/fixtures/deals.py, built
with as_of fixed); answers hand-computed there. Plus EXPLAIN of the deals queries."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import feedparser
import pytest

from api.queries import load_sql
from pricecat.config import Settings
from tests.api.conftest import ApiServer, run_server, server_settings
from tests.fixtures import deals
from tests.fixtures.deals import deals_settings  # noqa: F401 - session fixture

#: EXPLAIN arguments of the deals queries (tests/api/test_explain.py walks every .sql file)
EXPLAIN_ARGS: dict[str, tuple[Any, ...]] = {
    "deals_page": (Decimal("10"), True, None, ["party"], "shopc", 24, 0),
    "deals_count": (Decimal("10"), True, None, ["party"], "shopc"),
    "deals_badges": (["deal-old-price", "deal-null-prices"],),
}


def ts(days: float) -> str:
    return deals.D(days).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture(scope="module")
def deals_api(deals_settings: Settings, api_log_dir: Path) -> Iterator[ApiServer]:  # noqa: F811
    with run_server(server_settings(deals_settings), api_log_dir) as server:
        yield server


def listed(body: dict[str, Any]) -> list[tuple[str, str, float]]:
    return [(i["slug"], i["seller"], i["discount_percent"]) for i in body["items"]]


def test_deals_default(deals_api: ApiServer) -> None:
    r = deals_api.get("/api/v1/deals")
    assert r.status_code == 200
    body = r.json()
    assert listed(body) == deals.DEALS_DEFAULT
    assert (body["page"], body["page_size"], body["total"]) == (1, 24, 5)
    two_steps = body["items"][3]
    assert two_steps == {
        "slug": "deal-two-steps", "name": "Dvě slevy za sebou", "seller": "shopb",
        "price": 810.0, "prior_price": 900.0, "discount_percent": 10.0,
        "reduced_at": ts(5), "is_available": True, "is_preorder": False,
        "badges": ["lowest_ever", "lowest_90d", "lowest_30d"],
    }


def test_fake_sales_sold_out_and_too_young_are_never_deals(deals_api: ApiServer) -> None:
    body = deals_api.get("/api/v1/deals", params={"min_discount": "0"}).json()
    assert listed(body) == [*deals.DEALS_DEFAULT, ("deal-small", "shopi", 5.0)]
    slugs = {i["slug"] for i in body["items"]}
    assert not slugs & {"deal-fake-sale", "deal-sold-out", "deal-too-young", "deal-old-price"}


@pytest.mark.parametrize(
    ("params", "want"),
    [
        ({"availability": "preorder"}, [("deal-preorder", "shopf", 16.7)]),
        ({"seller": "shopc"}, [("deal-null-prices", "shopc", 20.0)]),
        ({"categories": " Strategické  hry"},
         [("deal-preorder", "shopf", 16.7), ("deal-two-steps", "shopb", 10.0)]),
        ({"min_discount": "16.7"}, deals.DEALS_DEFAULT[:3]),
        ({"page": "2", "page_size": "2"}, deals.DEALS_DEFAULT[2:4]),
    ],
)
def test_deals_filters(
    deals_api: ApiServer, params: dict[str, str], want: list[tuple[str, str, float]]
) -> None:
    r = deals_api.get("/api/v1/deals", params=params)
    assert r.status_code == 200, r.text
    assert listed(r.json()) == want


@pytest.mark.parametrize(
    ("params", "parameter", "code"),
    [
        ({"min_discount": "abc"}, "min_discount", "invalid_parameter"),
        ({"min_discount": "100.1"}, "min_discount", "invalid_parameter"),
        ({"page": "0"}, "page", "invalid_parameter"),
        ({"page_size": "101"}, "page_size", "invalid_parameter"),
        ({"availability": "unavailable"}, "availability", "invalid_parameter"),
        ({"seller": "a b"}, "seller", "invalid_parameter"),
        ({"sort": "name"}, "sort", "unknown_parameter"),
    ],
)
def test_deals_validation(
    deals_api: ApiServer, params: dict[str, str], parameter: str, code: str
) -> None:
    r = deals_api.get("/api/v1/deals", params=params)
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == code
    assert error["details"]["parameter"] == parameter


def test_deals_are_cached(deals_api: ApiServer) -> None:
    first = deals_api.get("/api/v1/deals", params={"seller": "shopa"})
    second = deals_api.get("/api/v1/deals", params={"seller": "shopa"})
    assert first.headers["x-cache"] == "miss"
    assert second.headers["x-cache"] == "hit"
    assert second.headers["etag"] == first.headers["etag"]


def test_catalog_card_badges(deals_api: ApiServer) -> None:
    r = deals_api.get(
        "/api/v1/deals/badges",
        params={"slugs": "deal-old-price,deal-null-prices,deal-fake-sale,no-such-slug"},
    )
    assert r.status_code == 200, r.text
    # deal-old-price: 350 = market 30/90-day low (365: 100 at shopk); deal-null-prices: 400 is
    # the 30-day low only; deal-fake-sale: 790 > 700
    assert r.json() == {"items": [
        {"slug": "deal-null-prices", "badges": ["lowest_30d"]},
        {"slug": "deal-old-price", "badges": ["lowest_90d", "lowest_30d"]},
    ]}
    for params in ({}, {"slugs": "Bad Slug"}, {"slugs": ",".join(f"s{i}" for i in range(101))}):
        bad = deals_api.get("/api/v1/deals/badges", params=params)
        assert bad.status_code == 400
        assert bad.json()["error"]["details"]["parameter"] == "slugs"


def test_product_lows_and_discount(deals_api: ApiServer) -> None:
    body = deals_api.get("/api/v1/products/deal-null-prices").json()
    assert body["market_lows"] == {
        "30d": {"price": 400.0, "seller": "shopc", "at": ts(0)},
        "90d": {"price": 380.0, "seller": "shopc2", "at": ts(50)},
        "365d": {"price": 380.0, "seller": "shopc2", "at": ts(50)},
    }
    sellers = {s["seller"]: s for s in body["sellers"]}
    assert sellers["shopc"]["lows"] == {
        "30d": {"price": 400.0, "at": ts(0)},
        "90d": {"price": 400.0, "at": ts(0)},
        "365d": {"price": 400.0, "at": ts(0)},
    }
    assert sellers["shopc"]["discount"] == {
        "prior_price": 500.0, "percent": 20.0, "reduced_at": ts(3),
    }
    assert sellers["shopc"]["badges"] == ["lowest_30d"]
    assert sellers["shopc2"]["discount"] is None
    assert sellers["shopc2"]["lows"]["90d"] == {"price": 380.0, "at": ts(50)}


@pytest.mark.parametrize("slug", ["deal-fake-sale", "deal-sold-out", "deal-too-young"])
def test_product_without_discount(deals_api: ApiServer, slug: str) -> None:
    (seller,) = deals_api.get(f"/api/v1/products/{slug}").json()["sellers"]
    assert seller["discount"] is None


def test_atom_feed(deals_api: ApiServer) -> None:
    r = deals_api.get("/feeds/deals.atom")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/atom+xml")
    feed = feedparser.parse(r.content)
    assert not feed.bozo, feed.get("bozo_exception")
    assert feed.version == "atom10"
    assert feed.feed.id and feed.feed.title and feed.feed.updated
    assert feed.feed.updated == ts(2)  # the newest reduction (deal-preorder)
    entries = [(e.id, e.updated, e.link) for e in feed.entries]
    assert entries == [
        (f"tag:pricecat,2026:deals:{slug}:{seller}:{ts(days)}", ts(days), f"/p/{slug}")
        for slug, seller, days in [
            ("deal-exact-30", "shopa", 20), ("deal-null-prices", "shopc", 3),
            ("deal-preorder", "shopf", 2), ("deal-two-steps", "shopb", 5),
            ("deal-window-edge", "shopj", 5),
        ]
    ]
    nbsp = "\u00a0"
    assert feed.entries[0].title == (
        f"Sleva po třiceti dnech: 800{nbsp}Kč u shopa, sleva 20{nbsp}% z 1{nbsp}000{nbsp}Kč"
    )
    assert f"16,7{nbsp}%" in feed.entries[2].title
    again = deals_api.get("/feeds/deals.atom", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304


def test_atom_feed_filters(deals_api: ApiServer) -> None:
    r = deals_api.get("/feeds/deals.atom", params={"seller": "shopf"})
    feed = feedparser.parse(r.content)
    assert [e.link for e in feed.entries] == ["/p/deal-preorder"]
    assert deals_api.get("/feeds/deals.atom", params={"page": "1"}).status_code == 400


def test_openapi_documents_deals(deals_api: ApiServer) -> None:
    doc = deals_api.get("/docs/openapi.json").json()
    assert "/api/v1/deals" in doc["paths"]
    assert "/feeds/deals.atom" in doc["paths"]
    names = {p["name"] for p in doc["paths"]["/api/v1/deals"]["get"]["parameters"]}
    assert names == {"min_discount", "categories", "availability", "seller", "page", "page_size"}
    schemas = doc["components"]["schemas"]
    assert {"lows", "discount", "badges"} <= set(schemas["SellerOffer"]["properties"])
    assert "market_lows" in schemas["Product"]["properties"]
    assert set(schemas["WindowLows"]["properties"]) == {"30d", "90d", "365d"}
    assert set(schemas["MarketLows"]["properties"]) == {"30d", "90d", "365d"}


# --- EXPLAIN on the built deals marts -------------------------------------------------------


async def _plan(settings: Settings, name: str, args: tuple[Any, ...]) -> dict[str, Any]:
    conn = await asyncpg.connect(settings.api_database_url)
    try:
        await conn.execute("set enable_seqscan = off")
        await conn.execute("set enable_sort = off")
        raw = await conn.fetchval("explain (format json) " + load_sql(name), *args)
        plan: dict[str, Any] = json.loads(raw)[0]["Plan"]
        return plan
    finally:
        await conn.close()


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    out = [plan]
    for child in plan.get("Plans", []):
        out.extend(_nodes(child))
    return out


def _index_defs(settings: Settings) -> dict[str, str]:
    async def go() -> dict[str, str]:
        conn = await asyncpg.connect(settings.database_url)
        try:
            rows = await conn.fetch(
                "select indexname, indexdef from pg_indexes where schemaname = 'catalog'"
            )
            return {r["indexname"]: r["indexdef"] for r in rows}
        finally:
            await conn.close()

    return asyncio.run(go())


@pytest.mark.parametrize(
    ("name", "args", "index_key"),
    [
        ("deals_page", (Decimal("10"), None, None, [], None, 24, 0),
         "catalog_slug_seller_deals USING btree (discount_percent DESC, slug, seller)"),
        ("deals_count", (Decimal("10"), None, None, [], None),
         "catalog_slug_seller_deals USING btree (discount_percent DESC, slug, seller)"),
        ("product_sellers", ("deal-null-prices",),
         "catalog_slug_seller_deals USING btree (slug, seller)"),
        ("deals_badges", (["deal-old-price", "deal-null-prices"],),
         "catalog_slug_market_lows USING btree (slug)"),
        ("product_summary", ("deal-null-prices",),
         "catalog_slug_market_lows USING btree (slug)"),
    ],
)
def test_deals_queries_use_an_index(
    deals_settings: Settings, name: str, args: tuple[Any, ...], index_key: str  # noqa: F811
) -> None:
    plan = asyncio.run(_plan(deals_settings, name, args))
    indexes = _index_defs(deals_settings)
    used = [indexes[n["Index Name"]] for n in _nodes(plan) if n.get("Index Name") in indexes]
    assert any(index_key in d for d in used), (name, used)
    if name == "deals_page":  # the ORDER BY is the index order: no sort
        assert not any(n["Node Type"] == "Sort" for n in _nodes(plan))


@pytest.mark.parametrize("name", sorted(EXPLAIN_ARGS))
def test_explain_args_run(deals_settings: Settings, name: str) -> None:  # noqa: F811
    assert asyncio.run(_plan(deals_settings, name, EXPLAIN_ARGS[name]))["Node Type"]
