"""Header search: suggestion overlay (debounced, accent-insensitive), keyboard, catalog search."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.web.conftest import WebPage
from tests.web.test_catalog import card_slugs, text, wait_for_results

pytestmark = pytest.mark.browser


def suggestions(web: WebPage) -> list[str]:
    names = web.page.eval_on_selector_all(
        "#search-suggestions [role=option] .suggestion-name",
        "names => names.map(n => n.textContent)",
    )
    return [str(name) for name in names]


def type_query(web: WebPage, value: str) -> None:
    box = web.page.get_by_role("combobox", name="Hledat hru")
    box.click()
    box.fill("")
    box.press_sequentially(value, delay=30)


def test_typing_shows_suggestions_and_enter_opens_the_product(
    web: WebPage, output_dir: Path
) -> None:
    web.goto("/")
    wait_for_results(web)
    type_query(web, "osadnici")
    web.page.wait_for_selector("#search-suggestions [role=option]")
    assert suggestions(web)[0] == "Osadníci z Katanu"
    box = web.page.get_by_role("combobox", name="Hledat hru")
    assert box.get_attribute("aria-expanded") == "true"
    # debounced: far fewer suggest requests than the 8 keystrokes
    suggest_calls = [p for p in web.log.api_paths() if p == "/api/v1/search/suggest"]
    assert 1 <= len(suggest_calls) < 8

    box.press("ArrowDown")
    first = web.page.locator("#search-suggestions [role=option]").first
    assert first.get_attribute("aria-selected") == "true"
    assert box.get_attribute("aria-activedescendant") == first.get_attribute("id")
    web.screenshot(output_dir / "search-overlay.png", full_page=False)

    box.press("Enter")
    web.page.wait_for_url(re.compile(r"/p/osadnici-z-katanu$"))
    web.page.wait_for_selector("h1.product-title")
    assert web.page.inner_text("h1.product-title") == "Osadníci z Katanu"
    assert web.page.is_hidden("#search-suggestions")
    web.log.assert_clean()


def test_search_ignores_diacritics(web: WebPage) -> None:
    web.goto("/")
    wait_for_results(web)
    type_query(web, "cerna")
    web.page.wait_for_selector("#search-suggestions [role=option]")
    assert suggestions(web)[0] == "Černá kočka"
    web.log.assert_clean()


def test_arrow_keys_escape_and_no_match(web: WebPage) -> None:
    web.goto("/")
    wait_for_results(web)
    type_query(web, "dixit")
    web.page.wait_for_selector("#search-suggestions [role=option]")
    names = suggestions(web)
    assert {"Dixit", 'Dixit "Odyssey"'} <= set(names)
    box = web.page.get_by_role("combobox", name="Hledat hru")
    options = web.page.locator("#search-suggestions [role=option]")
    box.press("ArrowDown")
    box.press("ArrowDown")
    assert options.nth(1).get_attribute("aria-selected") == "true"
    box.press("ArrowUp")
    assert options.nth(0).get_attribute("aria-selected") == "true"
    box.press("ArrowUp")  # wraps to the last one
    assert options.nth(len(names) - 1).get_attribute("aria-selected") == "true"
    box.press("Escape")
    assert web.page.is_hidden("#search-suggestions")
    assert box.get_attribute("aria-expanded") == "false"
    assert web.page.url.endswith("/")

    type_query(web, "qqqqxyz")
    web.page.wait_for_selector("#search-suggestions .suggestion-empty")
    assert "nic nenašli" in web.page.inner_text("#search-suggestions")
    web.log.assert_clean()


def test_enter_without_selection_filters_the_catalog(web: WebPage) -> None:
    web.goto("/?availability=available")
    wait_for_results(web)
    type_query(web, "osadnici")
    web.page.get_by_role("combobox", name="Hledat hru").press("Enter")
    web.page.wait_for_url(re.compile(r"q=osadnici"))
    wait_for_results(web)
    assert card_slugs(web) == ["osadnici-z-katanu"]
    assert "availability=available" in web.page.url  # other filters are kept
    assert text(web.page.inner_text(".results-count")) == "Nalezena 1 hra"
    assert "osadnici" in web.page.inner_text(".query-note")

    web.page.reload()
    wait_for_results(web)
    assert card_slugs(web) == ["osadnici-z-katanu"]
    assert web.page.input_value("#search-input") == "osadnici"

    web.page.get_by_role("link", name="zrušit hledání").click()
    web.page.wait_for_url(lambda url: "q=" not in url)
    wait_for_results(web)
    assert len(card_slugs(web)) == 20
    web.log.assert_clean()
