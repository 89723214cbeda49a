"""Product page `/p/{slug}`: description priority, sellers, lowest price, multi-seller chart."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.web.conftest import WebPage
from tests.web.test_catalog import text

pytestmark = pytest.mark.browser


def open_product(web: WebPage, slug: str) -> None:
    web.goto(f"/p/{slug}")
    web.page.wait_for_selector(f'article.product[data-slug="{slug}"]')


def chart_series(web: WebPage) -> list[str]:
    web.page.wait_for_selector("#price-chart .uplot canvas")
    labels = json.loads(web.page.get_attribute("#price-chart", "data-series") or "null")
    return [str(label) for label in labels]


def seller_rows(web: WebPage) -> list[tuple[str, str]]:
    rows = web.page.eval_on_selector_all(
        "#sellers-table tbody tr",
        "rows => rows.map(r => [r.dataset.seller, r.querySelector('.price').textContent])",
    )
    return [(seller, text(price)) for seller, price in rows]


def test_three_sellers_draw_three_lines_plus_lowest(web: WebPage, output_dir: Path) -> None:
    open_product(web, "osadnici-z-katanu")
    page = web.page
    assert page.inner_text("h1.product-title") == "Osadníci z Katanu"
    # description: tlamagames (priority 1) has one
    assert page.inner_text("#product-description") == (
        "Klasická budovatelská hra o obchodu a osidlování ostrova."
    )
    # sellers by current price, with badges and shop links that are plain data
    assert seller_rows(web) == [
        ("tlamagames", "949 Kč"),
        ("tlamagase", "979 Kč"),
        ("svet-her", "1 099 Kč"),
    ]
    links = page.eval_on_selector_all(
        "#sellers-table a.shop-link", "as => as.map(a => [a.href, a.rel, a.target])"
    )
    assert links == [
        ["https://tlamagames.cz/osadnici-z-katanu", "noopener noreferrer nofollow", "_blank"],
        ["https://tlamagase.cz/katan", "noopener noreferrer nofollow", "_blank"],
        ["https://svet-her.cz/katan", "noopener noreferrer nofollow", "_blank"],
    ]
    badges = page.eval_on_selector_all(
        "#sellers-table td .badge", "bs => bs.map(b => b.textContent)"
    )
    assert badges == ["Skladem", "Skladem", "Skladem"]
    # lowest-ever price with its date (cs-CZ): tlamagames' sale on 2026-09-01
    assert text(page.inner_text("#lowest-ever")) == "899 Kč (1. 9. 2026)"
    assert "od 949 Kč u tlamagames" in text(page.inner_text(".product-price"))
    chips = page.eval_on_selector_all(".chips .chip", "cs => cs.map(c => c.textContent)")
    assert {"strategické", "obchodní", "rodinné hry"} <= {c.lower() for c in chips}

    # chart: one step line per seller (API priority order) + the lowest-price line
    assert chart_series(web) == ["tlamagames", "tlamagase", "svet-her", "Nejnižší cena"]
    assert page.get_attribute("#price-chart", "data-seller-series") == "3"
    legend = page.eval_on_selector_all(
        "#price-chart .u-legend .u-series .u-label", "ls => ls.map(l => l.textContent)"
    )
    assert legend[-4:] == ["tlamagames", "tlamagase", "svet-her", "Nejnižší cena"]
    hook = page.evaluate("() => window.__pricecatChart")
    assert hook["sellerSeries"] == 3
    assert hook["labels"] == ["tlamagames", "tlamagase", "svet-her", "Nejnižší cena"]
    # distinct times of the three sellers' price_points: 4 (tlamagames) + 2 + 3
    assert hook["points"] == 9

    # tooltip lists the sellers at the cursor, cheapest first
    over = page.locator("#price-chart .u-over")
    box = over.bounding_box()
    assert box is not None
    over.hover(position={"x": box["width"] - 2, "y": box["height"] / 2})
    tooltip = page.locator("#price-chart .chart-tooltip")
    tooltip.wait_for(state="visible")
    sellers = tooltip.locator(".chart-tooltip-seller").all_inner_texts()
    assert sellers == ["tlamagames", "tlamagase", "svet-her"]
    assert "Nejnižší cena: 949 Kč" in text(tooltip.inner_text())
    # earlier: the sale of 2026-09-01 makes tlamagames the cheapest at 899 Kč
    over.hover(position={"x": box["width"] * 0.33, "y": box["height"] / 2})
    assert "Nejnižší cena: 899 Kč" in text(tooltip.inner_text())
    page.locator(".product-section", has=page.locator("#price-chart")).screenshot(
        path=str(output_dir / "product-chart-tooltip.png")
    )
    page.mouse.move(0, 0)

    web.screenshot(output_dir / "product.png")
    web.log.assert_clean()


def test_description_falls_back_to_tlamagase(web: WebPage) -> None:
    open_product(web, "carcassonne")
    assert web.page.inner_text("#product-description") == (
        "Pokládání kartiček a stavba středověké krajiny."
    )
    assert chart_series(web) == ["tlamagames", "tlamagase", "Nejnižší cena"]
    assert seller_rows(web) == [("tlamagames", "579 Kč"), ("tlamagase", "629 Kč")]
    web.log.assert_clean()


def test_awkward_names_and_missing_data(web: WebPage) -> None:
    open_product(web, "dixit-odyssey")
    assert web.page.inner_text("h1.product-title") == 'Dixit "Odyssey"'
    assert web.page.inner_text("#product-description") == 'Rozšířená verze "Dixitu" pro 12 hráčů.'

    # no image and no description anywhere: placeholder + a Czech note
    open_product(web, "kryci-jmena")
    assert web.page.locator(".product-media .image-placeholder").count() == 1
    assert web.page.inner_text("#product-description") == "Popis zatím nemáme."
    # the unavailable seller sorts after by price but shows its badge
    assert seller_rows(web) == [("tlamagames", "379 Kč"), ("tlamagase", "389 Kč")]
    badges = web.page.eval_on_selector_all(
        "#sellers-table td .badge", "bs => bs.map(b => b.textContent)"
    )
    assert badges == ["Skladem", "Nedostupné"]

    # a seller whose newest price is NULL: no price in the table, a gap in its line
    open_product(web, "dixit")
    assert seller_rows(web) == [("tlamagase", "719 Kč"), ("tlamagames", "–")]
    assert chart_series(web) == ["tlamagames", "tlamagase", "Nejnižší cena"]
    web.log.assert_clean()


def test_unknown_slug_shows_a_friendly_czech_message(web: WebPage) -> None:
    web.log.expected_console.append(
        "Failed to load resource: the server responded with a status of 404"
    )
    web.goto("/p/tahle-hra-neexistuje")
    web.page.wait_for_selector(".message-not-found")
    assert web.page.inner_text(".message-not-found h1") == "Tuto hru jsme nenašli"
    assert web.page.title() == "Hra nenalezena – pricecat"
    web.page.get_by_role("link", name="Zpět na katalog").last.click()
    web.page.wait_for_url(re.compile(r"/$"))
    web.page.wait_for_selector(".card")
    web.log.assert_clean()


def test_navigation_between_pages_stays_on_the_same_origin(web: WebPage) -> None:
    web.goto("/?availability=preorder")
    web.page.wait_for_selector('.card[data-slug="duna-nesmrtelnost"]')
    web.page.click('.card[data-slug="duna-nesmrtelnost"] a')
    web.page.wait_for_url(re.compile(r"/p/duna-nesmrtelnost$"))
    web.page.wait_for_selector("#price-chart .uplot")
    assert web.page.get_attribute("#price-chart", "data-seller-series") == "3"
    web.page.get_by_role("link", name="← Zpět na katalog").click()
    web.page.wait_for_url(re.compile(r"availability=preorder"))
    web.page.wait_for_selector('.card[data-slug="gloomhaven-2"]')

    kinds = {kind for kind, _ in web.log.requests}
    assert {"document", "script", "stylesheet", "fetch"} <= kinds
    paths = web.log.api_paths()
    assert "/api/v1/catalog" in paths
    assert "/api/v1/meta/categories" in paths
    assert "/api/v1/products/duna-nesmrtelnost" in paths
    web.log.assert_clean()
