"""The deals marts equal the hand-computed answers of tests/fixtures/deals.py (issue 13).

The fixture is built into its own database with the dbt var as_of fixed, so windows are exact.
"""

from __future__ import annotations

from typing import Any

import pytest

from pricecat.config import Settings
from tests import helpers
from tests.fixtures import deals
from tests.fixtures.deals import deals_settings  # noqa: F401 - session fixture

SELLER_COLUMNS = tuple(next(iter(deals.SELLER_DEALS.values())))


@pytest.fixture(scope="module")
def seller_deals(deals_settings: Settings) -> dict[tuple[str, str], dict[str, Any]]:  # noqa: F811
    cols = ", ".join(("slug", "seller", *SELLER_COLUMNS))
    records = helpers.fetch(deals_settings, f"select {cols} from catalog.catalog_slug_seller_deals")  # noqa: S608
    return {(r["slug"], r["seller"]): dict(r) for r in records}


def test_one_row_per_offer(seller_deals: dict[tuple[str, str], dict[str, Any]]) -> None:
    assert sorted(seller_deals) == sorted(deals.SELLER_DEALS)


@pytest.mark.parametrize("key", sorted(deals.SELLER_DEALS), ids=lambda k: f"{k[0]}/{k[1]}")
def test_seller_deal_row(
    seller_deals: dict[tuple[str, str], dict[str, Any]], key: tuple[str, str]
) -> None:
    got = {c: v for c, v in seller_deals[key].items() if c not in ("slug", "seller")}
    assert got == deals.SELLER_DEALS[key]


@pytest.mark.parametrize("slug", sorted(deals.MARKET_LOWS))
def test_market_lows(deals_settings: Settings, slug: str) -> None:  # noqa: F811
    (r,) = helpers.fetch(
        deals_settings, "select * from catalog.catalog_slug_market_lows where slug = $1", slug
    )
    want = deals.MARKET_LOWS[slug]
    for window in ("30d", "90d", "365d"):
        got = (r[f"low_{window}_price"], r[f"low_{window}_seller"], r[f"low_{window}_at"])
        assert got == want[f"low_{window}"], window
    for column in ("offered_price", "is_lowest_30d", "is_lowest_90d", "is_lowest_365d"):
        assert r[column] == want[column], column


def test_market_lows_one_row_per_slug(deals_settings: Settings) -> None:  # noqa: F811
    (r,) = helpers.fetch(
        deals_settings, "select count(*) as n, count(distinct slug) as d "
        "from catalog.catalog_slug_market_lows",
    )
    assert r["n"] == r["d"] == len(deals.PRODUCTS)


def test_events(deals_settings: Settings) -> None:  # noqa: F811
    records = helpers.fetch(
        deals_settings,
        "select slug, seller, event_type, price, happened_at from catalog.catalog_deal_events",
    )
    assert sorted(tuple(r) for r in records) == deals.EVENTS
