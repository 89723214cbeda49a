"""The state tables' ANALYZE (macros/analyze_for_planner.sql): a full rebuild analyzes them; an
incremental run analyzes a state table only when its row count moved more than 10 % from the
planner's estimate (pg_class.reltuples). A scrape cycle rewrites nearly every offer without
changing its count: no ANALYZE. A new seller listing every game adds many offers: ANALYZE, and
the planner's row count is the table's again.

`pg_stat_user_tables.analyze_count` counts explicit ANALYZEs only (autovacuum's are counted in
`autoanalyze_count`), so the counts below are the hook's."""
from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

import pytest

from pricecat.config import Settings
from pricecat.dbt import run_dbt
from tests import helpers
from tests.fixtures.snapshots import ROWS

STATES = ("int_seller_offers_merged", "int_seller_prices_merged")
SCHEMA = "ana"
LATEST = max(r["scraped_at"] for r in ROWS)


@pytest.fixture(scope="module")
def db(base_settings: Settings) -> Iterator[Settings]:
    with helpers.raw_fixture_database(base_settings, "pricecat_analyze") as settings:
        yield settings


def build(settings: Settings, *, full: bool) -> None:
    args = [
        "build", "--select", "+int_seller_offers_merged", "--exclude", "resource_type:test",
        "resource_type:unit_test", "--vars", json.dumps({"state_schema": f"{SCHEMA}_state"}),
    ]
    if full:
        args.append("--full-refresh")
    proc = run_dbt(settings, args, schema=SCHEMA, capture=True)
    assert proc.returncode == 0, proc.stdout[-6000:]


def stats(settings: Settings) -> dict[str, tuple[int, int, float]]:
    """Per state table: (explicit ANALYZEs so far, rows, the planner's row count)."""
    out = {}
    for table in STATES:
        [row] = helpers.fetch(
            settings,
            "select s.analyze_count, c.reltuples,"  # noqa: S608 (names from this module)
            f" (select count(*) from {SCHEMA}_state.{table}) as n"
            " from pg_stat_user_tables as s join pg_class as c on c.oid = s.relid"
            " where s.schemaname = $1 and s.relname = $2",
            f"{SCHEMA}_state", table,
        )
        out[table] = (int(row["analyze_count"]), int(row["n"]), float(row["reltuples"]))
    return out


def latest_row(slug: str, seller: str) -> dict[str, object]:
    rows = [r for r in ROWS if r["product_name_normalized"] == slug and r["seller"] == seller]
    return dict(rows[-1])


def test_state_tables_analyzed_only_when_their_row_count_moved(db: Settings) -> None:
    build(db, full=True)
    after_full = stats(db)
    for table, (analyzed, rows, estimate) in after_full.items():
        assert analyzed >= 1, table
        assert estimate == rows, table

    # one new row for each of two known offers (a scrape cycle in small): counts unchanged
    helpers.load_rows(db, [
        {**latest_row("azul", "tlamagames"), "scraped_at": LATEST + timedelta(hours=1),
         "price": Decimal("777.00")},
        {**latest_row("azul", "tlamagase"), "scraped_at": LATEST + timedelta(hours=1)},
    ])
    build(db, full=False)
    after_cycle = stats(db)
    for table, (analyzed, rows, estimate) in after_cycle.items():
        assert analyzed == after_full[table][0], f"{table} analyzed though its count held"
        assert rows == after_full[table][1] == estimate, table

    # a new seller lists every game: far more than 10 % new offers
    slugs = sorted({r["product_name_normalized"] for r in ROWS if r["seller"] == "tlamagames"})
    template = latest_row("azul", "tlamagames")
    helpers.load_rows(db, [
        {**template, "product_name_normalized": slug, "product_name_original": slug,
         "seller": "nova-prodejna", "product_code": f"NP-{i}",
         "scraped_at": LATEST + timedelta(hours=2)}
        for i, slug in enumerate(slugs)
    ])
    build(db, full=False)
    after_seller = stats(db)
    for table, (analyzed, rows, estimate) in after_seller.items():
        assert rows >= after_cycle[table][1] * 1.1, table  # the case is what it claims
        assert analyzed == after_cycle[table][0] + 1, f"{table} not analyzed"
        assert estimate == rows, table
