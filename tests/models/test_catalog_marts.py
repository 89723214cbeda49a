"""The built marts equal the hand-written expectations for the hand-made fixture, row by row.

The fixture (tests/fixtures/snapshots.py) is loaded into a throwaway database and the real dbt
build runs into schema `catalog` (session fixture `fixture_settings`). Expected rows live in
tests/fixtures/expected.py and were derived by hand from docs/DESIGN.md.
"""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal
from typing import Any

import pytest

from pricecat.config import Settings
from tests import helpers
from tests.fixtures import expected
from tests.fixtures.snapshots import LISTINGS, ROWS, SLUGS

SELLER_KEYS = sorted(expected.SELLER_SUMMARY)


def _normalize_price_points(raw: Any) -> Any:
    """jsonb → list of (rendered_at, Decimal | None, bool); anything off-contract is kept as is
    so the diff shows it."""
    if raw is None:
        return None
    points = json.loads(raw, parse_float=Decimal) if isinstance(raw, str) else raw
    out: list[Any] = []
    for point in points:
        if not (isinstance(point, list) and len(point) == 3):
            out.append(point)
            continue
        at, price, is_available = point
        if isinstance(price, int) and not isinstance(price, bool):
            price = Decimal(price)
        # A price rendered as a JSON string stays a str and will not equal the Decimal.
        out.append((at, price, is_available))
    return out


def _fetch_mart(settings: Settings, table: str, columns: tuple[str, ...]) -> list[dict[str, Any]]:
    cols = ", ".join(columns)
    records = helpers.fetch(settings, f"select {cols} from catalog.{table}")  # noqa: S608
    rows = []
    for record in records:
        row = dict(record)
        if "price_points" in row:
            row["price_points"] = _normalize_price_points(row["price_points"])
        rows.append(row)
    return rows


@pytest.fixture(scope="module")
def slug_rows(fixture_settings: Settings) -> list[dict[str, Any]]:
    return _fetch_mart(fixture_settings, "catalog_slug_summary", expected.SLUG_SUMMARY_COLUMNS)


@pytest.fixture(scope="module")
def seller_rows(fixture_settings: Settings) -> list[dict[str, Any]]:
    return _fetch_mart(
        fixture_settings, "catalog_slug_seller_summary", expected.SELLER_SUMMARY_COLUMNS
    )


def _diff(expected_row: dict[str, Any], actual_row: dict[str, Any]) -> list[str]:
    lines = []
    for column, want in expected_row.items():
        got = actual_row.get(column)
        if want != got or type(want) is not type(got) and not _same_kind(want, got):
            lines.append(f"  {column}:\n    expected {want!r}\n    actual   {got!r}")
    return lines


def _same_kind(want: Any, got: Any) -> bool:
    """Equal values whose Python types differ only harmlessly (e.g. int vs int subclass)."""
    if want is None or got is None:
        return want is got
    if isinstance(want, bool) or isinstance(got, bool):
        return isinstance(want, bool) and isinstance(got, bool)
    if isinstance(want, Decimal):
        return isinstance(got, Decimal)
    return True


# ---- shape ---------------------------------------------------------------------------------


def test_contract_columns_exist(fixture_settings: Settings) -> None:
    for table, columns in (
        ("catalog_slug_summary", expected.SLUG_SUMMARY_COLUMNS),
        ("catalog_slug_seller_summary", expected.SELLER_SUMMARY_COLUMNS),
    ):
        present = {
            r["column_name"]
            for r in helpers.fetch(
                fixture_settings,
                "select column_name from information_schema.columns"
                " where table_schema = 'catalog' and table_name = $1",
                table,
            )
        }
        missing = sorted(set(columns) - present)
        assert not missing, f"catalog.{table} lacks contract columns {missing}"


def test_slug_summary_has_exactly_one_row_per_slug(slug_rows: list[dict[str, Any]]) -> None:
    counts = Counter(row["slug"] for row in slug_rows)
    duplicated = {slug: n for slug, n in counts.items() if n != 1}
    assert not duplicated, f"slugs with more than one row: {duplicated}"
    assert len(slug_rows) == expected.SLUG_COUNT == len(SLUGS)
    assert set(counts) == set(SLUGS) == set(expected.SLUG_SUMMARY), (
        f"missing {sorted(set(SLUGS) - set(counts))}, extra {sorted(set(counts) - set(SLUGS))}"
    )


def test_seller_summary_has_exactly_one_row_per_slug_and_seller(
    seller_rows: list[dict[str, Any]],
) -> None:
    counts = Counter((row["slug"], row["seller"]) for row in seller_rows)
    duplicated = {key: n for key, n in counts.items() if n != 1}
    assert not duplicated, f"(slug, seller) pairs with more than one row: {duplicated}"
    # the accepted listings only: the quarantined rows (BAD_LISTINGS) must add no pair
    raw_pairs = {(listing.slug, listing.seller) for listing in LISTINGS}
    assert set(counts) == raw_pairs == set(expected.SELLER_SUMMARY), (
        f"missing {sorted(raw_pairs - set(counts))}, extra {sorted(set(counts) - raw_pairs)}"
    )
    assert len(seller_rows) == expected.SELLER_ROW_COUNT


# ---- row by row ----------------------------------------------------------------------------


@pytest.mark.parametrize("slug", sorted(expected.SLUG_SUMMARY))
def test_slug_summary_row(slug: str, slug_rows: list[dict[str, Any]]) -> None:
    actual = [row for row in slug_rows if row["slug"] == slug]
    assert len(actual) == 1, f"{slug}: {len(actual)} rows in catalog_slug_summary"
    lines = _diff(expected.SLUG_SUMMARY[slug], actual[0])
    assert not lines, f"catalog_slug_summary[{slug}] differs:\n" + "\n".join(lines)


@pytest.mark.parametrize("key", SELLER_KEYS, ids=[f"{s}/{v}" for s, v in SELLER_KEYS])
def test_seller_summary_row(key: tuple[str, str], seller_rows: list[dict[str, Any]]) -> None:
    slug, seller = key
    actual = [row for row in seller_rows if row["slug"] == slug and row["seller"] == seller]
    assert len(actual) == 1, f"{slug}/{seller}: {len(actual)} rows in catalog_slug_seller_summary"
    lines = _diff(expected.SELLER_SUMMARY[key], actual[0])
    assert not lines, f"catalog_slug_seller_summary[{slug}/{seller}] differs:\n" + "\n".join(
        lines
    )


def test_price_points_are_rendered_as_contract_json(fixture_settings: Settings) -> None:
    """Raw jsonb text: [text 'YYYY-MM-DDTHH:MI:SSZ', number|null, boolean] triples."""
    rows = helpers.fetch(
        fixture_settings,
        "select slug, seller, jsonb_typeof(p -> 0) as t0, jsonb_typeof(p -> 1) as t1,"
        " jsonb_typeof(p -> 2) as t2, jsonb_array_length(p) as n"
        " from catalog.catalog_slug_seller_summary, jsonb_array_elements(price_points) as p",
    )
    assert rows
    bad = [
        dict(r)
        for r in rows
        if (r["n"], r["t0"], r["t2"]) != (3, "string", "boolean")
        or r["t1"] not in ("number", "null")
    ]
    assert not bad, f"off-contract price points: {bad[:5]}"


# ---- summary facts other tests rely on -----------------------------------------------------


def test_expected_summary_facts_are_consistent() -> None:
    """The hand-counted facts in expected.py agree with the hand-written rows (no database)."""
    assert len(expected.SLUG_ROWS) == expected.SLUG_COUNT
    assert len(expected.SELLER_ROWS) == expected.SELLER_ROW_COUNT
    assert expected.category_counts_from_rows() == Counter(expected.CATEGORY_COUNTS)
    by_status: dict[str, set[str]] = {"available": set(), "preorder": set(), "unavailable": set()}
    for row in expected.SLUG_ROWS:
        by_status[row["availability_status"]].add(row["slug"])
        assert row["is_available"] == (row["availability_status"] == "available")
        assert row["is_preorder"] == (row["availability_status"] == "preorder")
        assert row["seller_count"] == len(row["sellers"])
        assert row["categories"] == sorted(set(row["categories"]))
        sellers = [s for (slug, s) in expected.SELLER_SUMMARY if slug == row["slug"]]
        assert sorted(sellers) == sorted(row["sellers"])
        priorities = {
            expected.SELLER_SUMMARY[(row["slug"], s)]["seller_priority"]: s for s in sellers
        }
        assert [priorities[i + 1] for i in range(len(sellers))] == row["sellers"]
    assert by_status["available"] == expected.AVAILABLE_SLUGS
    assert by_status["preorder"] == expected.PREORDER_SLUGS
    assert by_status["unavailable"] == expected.UNAVAILABLE_SLUGS
    priced = sorted(
        ((r["slug"], r["min_price"]) for r in expected.SLUG_ROWS if r["min_price"] is not None),
        key=lambda item: (item[1], item[0]),
    )
    assert priced == expected.MIN_PRICE_ORDER
    assert {r["slug"] for r in expected.SLUG_ROWS if r["min_price"] is None} == (
        expected.NO_MIN_PRICE_SLUGS
    )
    assert len(expected.PREORDER_SLUGS) >= 3 and len(expected.UNAVAILABLE_SLUGS) >= 4


def test_summary_facts_hold_in_the_mart(fixture_settings: Settings) -> None:
    counts = {
        r["tag"]: r["n"]
        for r in helpers.fetch(
            fixture_settings,
            "select tag, count(*) as n"
            " from catalog.catalog_slug_summary, unnest(categories) as tag group by tag",
        )
    }
    assert counts == expected.CATEGORY_COUNTS
    status = {
        r["slug"]: r["availability_status"]
        for r in helpers.fetch(
            fixture_settings, "select slug, availability_status from catalog.catalog_slug_summary"
        )
    }
    assert {s for s, v in status.items() if v == "available"} == expected.AVAILABLE_SLUGS
    assert {s for s, v in status.items() if v == "preorder"} == expected.PREORDER_SLUGS
    assert {s for s, v in status.items() if v == "unavailable"} == expected.UNAVAILABLE_SLUGS
    ordered = [
        (r["slug"], r["min_price"])
        for r in helpers.fetch(
            fixture_settings,
            "select slug, min_price from catalog.catalog_slug_summary"
            " where min_price is not null order by min_price, slug",
        )
    ]
    assert ordered == expected.MIN_PRICE_ORDER


# ---- staging: every raw text of the fixture is classified / normalized as written by hand ----


def test_every_availability_variant_is_classified(fixture_settings: Settings) -> None:
    raw_texts = {r["availability"] for r in ROWS}
    for variant in (
        "Skladem", "skladem > 5 ks", "Na skladě", "Na objednávku", "U dodavatele",
        "Předobjednávka", "Předprodej", "Připravujeme", "Vyprodáno", "Není skladem",
        "Dočasně nedostupné", "In stock", "Out of stock", "Preorder", None,
        "Není na skladě", "Not in stock", "Nedostupné (bude skladem 1. 5.)", "Skladem > 5 ks",
    ):
        assert variant in raw_texts, f"fixture lacks availability variant {variant!r}"
    rows = helpers.fetch(
        fixture_settings,
        "select snapshot_id, availability_raw, is_available, is_preorder"
        " from catalog.stg_scraper__product_price_snapshots",
    )
    assert len(rows) == len(ROWS) - len(expected.QUARANTINED)
    wrong = []
    for r in rows:
        raw = ROWS[r["snapshot_id"] - 1]["availability"]
        trimmed = (raw or "").strip() or None
        want = expected.AVAILABILITY_CLASSES[trimmed]
        got = (r["availability_raw"], (r["is_available"], r["is_preorder"]))
        if got != (trimmed, want):
            wrong.append(f"{raw!r}: expected {(trimmed, want)}, got {got}")
    assert not wrong, "misclassified availability:\n" + "\n".join(sorted(set(wrong)))


def test_every_category_text_is_normalized(fixture_settings: Settings) -> None:
    rows = helpers.fetch(
        fixture_settings,
        "select snapshot_id, categories from catalog.stg_scraper__product_price_snapshots",
    )
    wrong = []
    for r in rows:
        raw = ROWS[r["snapshot_id"] - 1]["categories"]
        want = expected.CATEGORY_NORMALIZATION[raw]
        got = r["categories"]
        if got is None or sorted(got) != want or len(set(got)) != len(got):
            wrong.append(f"{raw!r}: expected {want}, got {got}")
    assert not wrong, "badly normalized categories:\n" + "\n".join(sorted(set(wrong)))


# ---- quarantine: bad raw rows are listed with their reason and reach no read model ----------


def test_quarantined_rows_are_listed_with_their_reason(fixture_settings: Settings) -> None:
    rows = helpers.fetch(
        fixture_settings,
        "select snapshot_id, seller, slug, scraped_at, reason"
        " from catalog.catalog_quarantined_snapshots",
    )
    got = sorted(
        (r["seller"], r["slug"], r["scraped_at"], r["reason"]) for r in rows
    )
    want = sorted(
        (seller, slug, expected._ts(at), reason)
        for seller, slug, at, reason in expected.QUARANTINED
    )
    assert got == want
    for r in rows:  # the listed id is the raw row itself
        raw = ROWS[r["snapshot_id"] - 1]
        assert (raw["seller"], raw["product_name_normalized"]) == (r["seller"], r["slug"])


def test_quarantined_rows_reach_no_read_model(fixture_settings: Settings) -> None:
    quarantined_ids = [
        r["snapshot_id"]
        for r in helpers.fetch(
            fixture_settings, "select snapshot_id from catalog.catalog_quarantined_snapshots"
        )
    ]
    assert len(quarantined_ids) == len(expected.QUARANTINED)
    leaked = helpers.fetch(
        fixture_settings,
        "select snapshot_id from catalog.stg_scraper__product_price_snapshots"
        " where snapshot_id = any($1::bigint[])",
        quarantined_ids,
    )
    assert not leaked
    negative = helpers.fetch(
        fixture_settings,
        "select slug, seller from catalog.catalog_slug_seller_summary"
        " where least(current_price, min_price, max_price, last_known_price) < 0"
        " or btrim(seller) = '' or seller like '%' || chr(8199) || '%'",
    )
    assert not negative


def test_no_fixture_text_is_unmatched(fixture_settings: Settings) -> None:
    """Every availability text of the fixture has a rule (unknown texts: the YAML unit test)."""
    rows = helpers.fetch(fixture_settings, "select * from catalog.catalog_availability_unmatched")
    assert [dict(r) for r in rows] == []
