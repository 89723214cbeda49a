"""The "Slevy" page and the product page's lows/discount in Chromium, against `pricecat serve` on
the deals fixture database (tests/fixtures/deals.py, as_of fixed; answers computed there)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from pricecat.config import Settings
from tests.api.conftest import ApiServer, run_server, server_settings
from tests.fixtures.deals import deals_settings  # noqa: F401 - session fixture
from tests.web.conftest import WebPage, _open_page


@pytest.fixture(scope="module")
def deals_server(
    deals_settings: Settings, web_dist: Path, output_dir: Path  # noqa: F811
) -> Iterator[ApiServer]:
    log_dir = output_dir / "web-deals"
    log_dir.mkdir(exist_ok=True)
    with run_server(server_settings(deals_settings), log_dir) as server:
        yield server


@pytest.fixture
def page(browser: Browser, deals_server: ApiServer) -> Iterator[WebPage]:
    """The session's Chromium (tests/web/conftest.py) on the deals server."""
    yield from _open_page(browser, deals_server.url, {"width": 1280, "height": 900})


def plain(text: str) -> str:
    return " ".join(text.replace("\u00a0", " ").split())


def cards(web: WebPage) -> list[tuple[str, str]]:
    web.page.wait_for_selector("#deal-list .deal-card")
    return [
        (c.get_attribute("data-slug") or "", c.get_attribute("data-seller") or "")
        for c in web.page.locator("#deal-list .deal-card").all()
    ]


def test_slevy_lists_real_deals_in_order(page: WebPage, output_dir: Path) -> None:
    page.goto("/slevy")
    assert cards(page) == [
        ("deal-exact-30", "shopa"), ("deal-null-prices", "shopc"), ("deal-preorder", "shopf"),
        ("deal-two-steps", "shopb"), ("deal-window-edge", "shopj"),
    ]
    first = plain(page.page.locator(".deal-card").first.inner_text())
    assert "800 Kč" in first and "1 000 Kč" in first and "20 %" in first
    assert "Sleva 20 % z 1 000 Kč (nejnižší cena za 30 dní před zlevněním)" in first
    two_steps = page.page.locator('.deal-card[data-slug="deal-two-steps"]')
    assert plain(two_steps.locator(".price-badge").inner_text()) == "nejnižší cena v historii"
    body = page.page.locator("main").inner_text()
    assert "Falešná sleva" not in body  # the fake sale is never shown as a sale
    page.screenshot(output_dir / "web-deals.png")
    page.log.assert_clean()


def test_slevy_filters_follow_the_url(page: WebPage) -> None:
    page.goto("/slevy")
    cards(page)
    page.page.select_option("#deals-availability", "preorder")
    page.page.wait_for_url("**/slevy?availability=preorder")
    page.page.wait_for_function(
        "document.querySelectorAll('#deal-list .deal-card').length === 1"
    )
    assert cards(page) == [("deal-preorder", "shopf")]
    page.goto("/slevy?min_discount=5")
    assert ("deal-small", "shopi") in cards(page)
    page.log.assert_clean()


def test_product_page_lows_and_discount(page: WebPage) -> None:
    page.goto("/p/deal-null-prices")
    row = page.page.locator('tr[data-seller="shopc"]')
    row.wait_for()
    text = plain(row.inner_text())
    assert "Sleva 20 % z 500 Kč (nejnižší cena za 30 dní před zlevněním)" in text
    lows = [plain(s.inner_text()) for s in row.locator(".seller-low").all()]
    assert lows == ["Nejnižší za 30 dní: 400 Kč", "za 90 dní: 400 Kč", "za rok: 400 Kč"]
    other = plain(page.page.locator('tr[data-seller="shopc2"]').inner_text())
    assert "Sleva" not in other
    assert "za 90 dní: 380 Kč" in other
    page.log.assert_clean()


def test_fake_sale_is_not_shown_as_a_sale(page: WebPage) -> None:
    page.goto("/p/deal-fake-sale")
    row = page.page.locator('tr[data-seller="shopg"]')
    row.wait_for()
    assert "Sleva" not in row.inner_text()
    assert page.page.locator(".seller-discount").count() == 0
    page.log.assert_clean()


def test_catalog_cards_carry_price_badges(page: WebPage) -> None:
    page.goto("/")
    badge = page.page.locator('.card[data-slug="deal-old-price"] .price-badge')
    badge.wait_for()
    assert plain(badge.inner_text()) == "nejnižší cena za 90 dní"
    page.page.locator('.card[data-slug="deal-null-prices"] .price-badge').wait_for()
    assert page.page.locator('.card[data-slug="deal-fake-sale"] .price-badge').count() == 0
    page.log.assert_clean()
