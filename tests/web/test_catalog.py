"""Catalog page `/` in a real browser against `pricecat serve` on the fixture data.

Expected values follow from tests/fixtures/snapshots.py and the mart rules in docs/DESIGN.md:
28 slugs — 20 available, 3 preorder only (duna-nesmrtelnost, gloomhaven-2, kocici-vybuch-2),
5 unavailable only; cheapest prsi (99), most expensive gloomhaven-2 (4 999, preorder).
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.fixtures.snapshots import SLUGS as ALL_SLUGS
from tests.web.conftest import WebPage

pytestmark = pytest.mark.browser

TOTAL = 28


def text(value: str) -> str:
    """Normalizes the no-break spaces of cs-CZ number formatting."""
    return re.sub(r"[\u00a0\u202f]", " ", value).strip()


def wait_for_results(web: WebPage) -> None:
    page = web.page
    page.wait_for_selector(".results-count[data-total]")
    page.wait_for_function("() => !document.querySelector('.catalog.loading')")


def total(web: WebPage) -> int:
    return int(web.page.get_attribute(".results-count", "data-total") or "-1")


def card_slugs(web: WebPage) -> list[str]:
    slugs = web.page.eval_on_selector_all(".card", "cards => cards.map(c => c.dataset.slug)")
    return [str(slug) for slug in slugs]


def card_text(web: WebPage, slug: str) -> str:
    return text(web.page.inner_text(f'.card[data-slug="{slug}"]'))


def query(web: WebPage) -> dict[str, list[str]]:
    return parse_qs(urlsplit(web.page.url).query)


def test_catalog_shows_the_fixture_cards(web: WebPage, output_dir: Path) -> None:
    web.goto("/")
    wait_for_results(web)
    assert total(web) == TOTAL
    assert text(web.page.inner_text(".results-count")) == "Nalezeno 28 her"
    slugs = card_slugs(web)
    assert len(slugs) == 24  # default page size
    assert len(set(slugs)) == 24

    # name, "od X Kč" (cs-CZ), seller count and the availability badge
    web.goto("/?page_size=50")
    wait_for_results(web)
    assert sorted(card_slugs(web)) == sorted(ALL_SLUGS)
    card = card_text(web, "osadnici-z-katanu")
    assert "Osadníci z Katanu" in card
    assert "od 949 Kč" in card
    assert "3 prodejci" in card
    assert "Skladem" in card
    assert "od 1 099 Kč" in card_text(web, "ticket-to-ride-evropa")
    assert "od 3 290 Kč" in card_text(web, "nemesis")  # the available seller, not the preorder
    agricola = card_text(web, "agricola")
    assert "Nedostupné" in agricola and "Cena neuvedena" in agricola
    web.goto("/?availability=preorder")
    wait_for_results(web)
    assert sorted(card_slugs(web)) == ["duna-nesmrtelnost", "gloomhaven-2", "kocici-vybuch-2"]
    gloomhaven = card_text(web, "gloomhaven-2")
    assert "od 4 999 Kč" in gloomhaven
    assert "1 prodejce" in gloomhaven
    assert "Předobjednávka" in gloomhaven
    assert "od 1 190 Kč" in card_text(web, "duna-nesmrtelnost")  # not the sold-out 999
    assert "od 399 Kč" in card_text(web, "kocici-vybuch-2")

    # a card without any image shows the placeholder instead of an <img>
    web.goto("/?q=tajemny")
    wait_for_results(web)
    assert card_slugs(web)[0] == "tajemny-ostrov"
    placeholder_card = web.page.locator('.card[data-slug="tajemny-ostrov"]')
    assert placeholder_card.locator("img").count() == 0
    assert placeholder_card.locator(".image-placeholder").count() == 1
    assert "Cena neuvedena" in text(placeholder_card.inner_text())

    # images of the other cards are lazy
    web.goto("/")
    wait_for_results(web)
    lazy = web.page.eval_on_selector_all(".card img", "imgs => imgs.map(i => i.loading)")
    assert lazy and set(lazy) == {"lazy"}
    # ... and come from the same-origin image proxy, not from the sellers' hosts
    cards = web.page.eval_on_selector_all(
        ".card", "cs => cs.filter(c => c.querySelector('img')).map(c => "
        "[c.dataset.slug, c.querySelector('img').getAttribute('src')])"
    )
    assert cards and all(
        src == f"{web.base}/api/v1/images/{slug}" for slug, src in cards
    ), cards

    web.screenshot(output_dir / "catalog.png")
    web.log.assert_clean()


def test_availability_filter_and_url_state(web: WebPage) -> None:
    web.goto("/")
    wait_for_results(web)
    web.page.get_by_label("Předobjednávka", exact=True).check()
    web.page.wait_for_url(re.compile(r"availability=preorder"))
    wait_for_results(web)
    assert total(web) == 3

    web.page.reload()
    wait_for_results(web)
    assert total(web) == 3
    assert web.page.get_by_label("Předobjednávka", exact=True).is_checked()

    web.page.get_by_label("Nedostupné", exact=True).check()
    web.page.wait_for_url(re.compile(r"availability=unavailable"))
    wait_for_results(web)
    assert sorted(card_slugs(web)) == [
        "agricola",
        "hanabi",
        "mysi-a-kouzla",
        "panic-lab",
        "zombicide",
    ]

    web.page.get_by_label("Skladem", exact=True).check()
    web.page.wait_for_url(re.compile(r"availability=available"))
    wait_for_results(web)
    assert total(web) == 20

    # back/forward walk through the filter history
    web.page.go_back()
    web.page.wait_for_url(re.compile(r"availability=unavailable"))
    wait_for_results(web)
    assert total(web) == 5
    assert web.page.get_by_label("Nedostupné", exact=True).is_checked()
    web.page.go_back()
    web.page.go_back()
    web.page.wait_for_url(lambda url: urlsplit(url).query == "")
    wait_for_results(web)
    assert total(web) == TOTAL
    assert web.page.get_by_label("Vše", exact=True).is_checked()
    web.log.assert_clean()


def test_price_range_filter(web: WebPage) -> None:
    web.goto("/")
    wait_for_results(web)
    web.page.fill("#filter-min-price", "4000")
    web.page.get_by_role("button", name="Použít cenu").click()
    web.page.wait_for_url(re.compile(r"min_price=4000"))
    wait_for_results(web)
    assert sorted(card_slugs(web)) == ["gloomhaven-2", "twilight-imperium"]

    web.page.fill("#filter-min-price", "")
    web.page.fill("#filter-max-price", "200")
    web.page.get_by_role("button", name="Použít cenu").click()
    web.page.wait_for_url(re.compile(r"max_price=200"))
    wait_for_results(web)
    assert "min_price" not in query(web)
    assert sorted(card_slugs(web)) == ["100-procent-zabava", "prsi"]

    web.page.fill("#filter-min-price", "500")
    web.page.fill("#filter-max-price", "600")
    web.page.get_by_role("button", name="Použít cenu").click()
    web.page.wait_for_url(re.compile(r"min_price=500&max_price=600"))
    wait_for_results(web)
    assert sorted(card_slugs(web)) == ["carcassonne", "sachy"]

    # min > max is caught in the form (Czech message), the URL stays
    url = web.page.url
    web.page.fill("#filter-min-price", "900")
    web.page.fill("#filter-max-price", "100")
    web.page.get_by_role("button", name="Použít cenu").click()
    assert "vyšší" in web.page.inner_text(".field-error")
    assert web.page.url == url
    web.log.assert_clean()


def test_category_filter_uses_counts_and_combines(web: WebPage) -> None:
    web.goto("/")
    wait_for_results(web)
    web.page.wait_for_selector("#category-list input[type=checkbox]")
    label = web.page.locator("#category-list label", has_text="kooperativní")
    assert text(label.inner_text()).endswith("4")  # count from /meta/categories
    label.click()
    web.page.wait_for_url(re.compile(r"categories=kooperativn"))
    wait_for_results(web)
    assert sorted(card_slugs(web)) == [
        "gloomhaven-2",
        "hanabi",
        "mysi-a-kouzla",
        "tajemny-ostrov",
    ]
    assert text(web.page.inner_text(".results-count")) == "Nalezeny 4 hry"

    web.page.locator("#category-list label", has_text="karetní").first.click()
    web.page.wait_for_url(re.compile(r"categories=[^&]*%2C"))
    wait_for_results(web)
    assert card_slugs(web) == ["hanabi"]
    assert text(web.page.inner_text(".results-count")) == "Nalezena 1 hra"
    assert query(web)["categories"] == ["kooperativní,karetní"]

    web.page.reload()
    wait_for_results(web)
    assert card_slugs(web) == ["hanabi"]
    checked = web.page.eval_on_selector_all(
        "#category-list input:checked", "inputs => inputs.map(i => i.value)"
    )
    assert sorted(checked) == ["karetní", "kooperativní"]
    web.log.assert_clean()


def test_sort_orders(web: WebPage) -> None:
    web.goto("/")
    wait_for_results(web)
    web.page.select_option("#sort-select", "price_asc")
    web.page.wait_for_url(re.compile(r"sort=price_asc"))
    wait_for_results(web)
    assert card_slugs(web)[:3] == ["prsi", "100-procent-zabava", "cerna-kocka"]
    assert "od 99 Kč" in card_text(web, "prsi")

    web.page.select_option("#sort-select", "price_desc")
    web.page.wait_for_url(re.compile(r"sort=price_desc"))
    wait_for_results(web)
    assert card_slugs(web)[:3] == ["gloomhaven-2", "twilight-imperium", "nemesis"]

    # sort + filter combined, and the sort survives a reload
    web.page.get_by_label("Skladem", exact=True).check()
    web.page.wait_for_url(re.compile(r"availability=available"))
    wait_for_results(web)
    assert card_slugs(web)[:2] == ["twilight-imperium", "nemesis"]
    web.page.reload()
    wait_for_results(web)
    assert web.page.eval_on_selector("#sort-select", "s => s.value") == "price_desc"
    assert card_slugs(web)[:2] == ["twilight-imperium", "nemesis"]

    web.page.select_option("#sort-select", "name")
    web.page.wait_for_url(lambda url: "sort=" not in url)  # the default is not in the URL
    wait_for_results(web)
    names = web.page.eval_on_selector_all(
        ".card .card-title", "titles => titles.map(t => t.textContent)"
    )
    assert len(names) == 20
    assert names[:2] == ["100% zábava", "7 divů světa"]
    web.log.assert_clean()


def test_pagination_survives_reload(web: WebPage) -> None:
    web.goto("/?page_size=10")
    wait_for_results(web)
    first = card_slugs(web)
    assert len(first) == 10
    assert "Strana 1 z 3" in web.page.inner_text(".pagination")

    web.page.get_by_role("link", name="Další stránka").click()
    web.page.wait_for_url(re.compile(r"page=2"))
    wait_for_results(web)
    second = card_slugs(web)
    assert len(second) == 10 and not set(first) & set(second)

    web.page.get_by_role("link", name="Stránka 3").click()
    web.page.wait_for_url(re.compile(r"page=3"))
    wait_for_results(web)
    third = card_slugs(web)
    assert len(third) == 8
    assert len(set(first) | set(second) | set(third)) == TOTAL

    web.page.reload()
    wait_for_results(web)
    assert card_slugs(web) == third
    assert web.page.inner_text(".pagination [aria-current=page]") == "3"
    assert query(web) == {"page_size": ["10"], "page": ["3"]}

    web.page.go_back()
    web.page.wait_for_url(re.compile(r"page=2"))
    wait_for_results(web)
    assert card_slugs(web) == second

    # a filter change starts again at page 1
    web.page.get_by_label("Skladem", exact=True).check()
    web.page.wait_for_url(re.compile(r"availability=available"))
    wait_for_results(web)
    assert "page" not in query(web)
    assert "Strana 1 z 2" in web.page.inner_text(".pagination")

    # a page past the end: empty list, correct total, a way back
    web.goto("/?page_size=10&page=9")
    wait_for_results(web)
    assert card_slugs(web) == []
    assert total(web) == TOTAL
    assert "Na této stránce už nic není" in web.page.inner_text(".results")
    web.log.assert_clean()


def test_phone_width_has_no_horizontal_scroll(phone: WebPage, output_dir: Path) -> None:
    phone.goto("/")
    wait_for_results(phone)
    assert phone.page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    phone.screenshot(output_dir / "catalog-phone.png", full_page=False)
    phone.goto("/p/osadnici-z-katanu")
    phone.page.wait_for_selector("#price-chart .uplot")
    assert phone.page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    # the shop links are reachable without horizontal scrolling of the sellers table
    for link in phone.page.locator("#sellers-table a.shop-link").all():
        box = link.bounding_box()
        assert box is not None and box["x"] + box["width"] <= 390
    assert phone.page.locator("#sellers-table th .show-narrow .badge").first.is_visible()
    phone.screenshot(output_dir / "product-phone.png")
    phone.log.assert_clean()


def test_api_errors_are_shown_in_czech(web: WebPage) -> None:
    web.log.expected_console.append(
        "Failed to load resource: the server responded with a status of 400"
    )
    web.goto("/?min_price=500&max_price=100")  # hand-edited URL the API rejects
    web.page.wait_for_selector(".results .message-error")
    assert "Neplatná hodnota filtru „cena od“" in web.page.inner_text(".results .message-error")
    assert web.page.get_by_role("button", name="Zkusit znovu").is_visible()
    # the filters still work: fixing the range loads results again
    web.page.fill("#filter-max-price", "600")
    web.page.get_by_role("button", name="Použít cenu").click()
    web.page.wait_for_url(re.compile(r"max_price=600"))
    wait_for_results(web)
    assert sorted(card_slugs(web)) == ["carcassonne", "sachy"]
    web.log.assert_clean()
