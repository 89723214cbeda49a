"""Incremental refresh = full rebuild: after every appended scraper cycle, the marts built from the
incremental state (int_seller_offers_merged, merged run by run) are identical, row by row and
column by column (price_points included), to the marts of a full rebuild of the same raw table;
so are the deals models (int_seller_prices_changed from the incremental price-step state
int_seller_prices_merged, and the deals marts), both built with the same fixed dbt var `as_of`.

One throwaway database holds the raw rows; two dbt targets read it: `inc` (state in
`inc_state`, built incrementally after each cycle) and `rebuilt` (state in `rebuilt_state`,
`--full-refresh` every time). The cycles cover new prices, sell-outs, NULL prices, late rows
older than the watermark carrying a new lowest price, brand-new games, a new seller on an old
game, quarantined rows, a row after `as_of`, ties on scraped_at, and ids committing out of order
(a transaction that took its ids before a refresh commits after it). The quarantine and the
unmatched-availability marts (from their own incremental state) are compared too: unmatched
texts arrive in every cycle (a new seller on a known text, a late row, a row committing out of
order), and one cycle's rows arrive twice (a run whose ledger write never happened).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from pricecat.config import Settings
from pricecat.dbt import run_dbt
from pricecat.seed import COLUMNS
from tests import helpers
from tests.fixtures.snapshots import ROWS

MARTS = {
    "catalog_slug_seller_summary": "slug, seller",
    "catalog_slug_summary": "slug",
    "int_seller_prices_changed": "slug, seller, valid_from",
    "catalog_slug_seller_deals": "slug, seller",
    "catalog_slug_market_lows": "slug",
    "catalog_deal_events": "slug, seller, happened_at, event_type, price",
    "catalog_quarantined_snapshots": "snapshot_id",
    "catalog_availability_unmatched": "availability_raw",
}
#: the incremental state tables compared too (`<schema>_state`): columns, and the rows compared.
#: int_seller_prices_changed holds only the steps the deals windows need, so the whole step state
#: is compared here; kept_step_count (how the latest run wrote an offer) differs by design, and
#: an incremental run leaves an offer whose events a late row removed with empty arrays.
STATES = {
    "int_seller_prices_merged": (
        "slug, seller, last_priced_at, step_valid_from, step_price, step_snapshot_id,"
        " step_lowest_price",
        "true",
    ),
    "int_deal_events_merged": (
        "slug, seller, event_type, event_snapshot_id, event_price, event_happened_at",
        "cardinality(t.event_type) > 0",
    ),
}
#: empty before the cycles add rows to them (the base fixture has no unmatched text)
MAY_BE_EMPTY = {"catalog_availability_unmatched"}
ASK = "Na dotaz"  # an availability text no rule matches
MAX_SCRAPED_AT = max(r["scraped_at"] for r in ROWS)
#: both builds see the same time; the cycles below add rows up to MAX_SCRAPED_AT + ~1 h, and one
#: row after AS_OF (which every deals model must ignore)
AS_OF = MAX_SCRAPED_AT + timedelta(days=1)


def _latest(slug: str, seller: str) -> dict[str, Any]:
    rows = [r for r in ROWS if r["product_name_normalized"] == slug and r["seller"] == seller]
    return dict(rows[-1])


@pytest.fixture(scope="module")
def db(base_settings: Settings) -> Iterator[Settings]:
    with helpers.raw_fixture_database(base_settings, "pricecat_inc") as settings:
        yield settings


def build(settings: Settings, schema: str, *, full: bool, exclude: str = "") -> None:
    args = [
        "build", "--exclude", "resource_type:unit_test", *exclude.split(),
        "--vars", json.dumps({"state_schema": f"{schema}_state", "as_of": AS_OF.isoformat()}),
    ]
    if full:
        args.append("--full-refresh")
    proc = run_dbt(settings, args, schema=schema, capture=True)
    assert proc.returncode == 0, proc.stdout[-6000:]


def mart_rows(settings: Settings, schema: str, mart: str) -> list[str]:
    """Every column of every row as Postgres renders it (numeric scale and jsonb text included)."""
    order = MARTS[mart]
    rows = helpers.fetch(
        settings, f"select t::text as line from {schema}.{mart} as t order by {order}"  # noqa: S608
    )
    return [r["line"] for r in rows]


def state_rows(settings: Settings, schema: str, state: str) -> list[str]:
    columns, where = STATES[state]
    rows = helpers.fetch(
        settings,
        f"select row({columns})::text as line from {schema}_state.{state} as t"  # noqa: S608
        f" where {where} order by slug, seller",
    )
    return [r["line"] for r in rows]


def assert_same(name: str, inc: list[str], full: list[str]) -> None:
    assert len(inc) == len(full), name
    assert inc or name in MAY_BE_EMPTY, name
    diff = [(a, b) for a, b in zip(inc, full, strict=True) if a != b]
    assert not diff, f"{name}: incremental != full:\n" + "\n".join(
        f"  inc  {a}\n  full {b}" for a, b in diff[:5]
    )


def assert_incremental_equals_full(settings: Settings) -> None:
    build(settings, "inc", full=False)
    build(settings, "rebuilt", full=True)
    for mart in MARTS:
        assert_same(mart, mart_rows(settings, "inc", mart), mart_rows(settings, "rebuilt", mart))
    for state in STATES:
        assert_same(
            state, state_rows(settings, "inc", state), state_rows(settings, "rebuilt", state)
        )


def offer(settings: Settings, slug: str, seller: str) -> asyncpg.Record:
    rows = helpers.fetch(
        settings,
        "select * from inc.catalog_slug_seller_summary where slug = $1 and seller = $2",
        slug, seller,
    )
    assert len(rows) == 1
    return rows[0]


def steps(settings: Settings, slug: str, seller: str) -> list[tuple[Any, ...]]:
    """(valid_from, price, previous_price, valid_to) of one offer's price steps (incremental)."""
    rows = helpers.fetch(
        settings,
        "select valid_from, price, previous_price, valid_to from inc.int_seller_prices_changed"
        " where slug = $1 and seller = $2 order by valid_from",
        slug, seller,
    )
    return [tuple(r.values()) for r in rows]


def events(settings: Settings, slug: str, seller: str) -> list[tuple[Any, ...]]:
    """(event_type, price, happened_at) of one offer's deal events (incremental mart)."""
    rows = helpers.fetch(
        settings,
        "select event_type, price, happened_at from inc.catalog_deal_events"
        " where slug = $1 and seller = $2 order by happened_at, event_type",
        slug, seller,
    )
    return [tuple(r.values()) for r in rows]


def unmatched(settings: Settings, text: str) -> tuple[Any, ...]:
    """(snapshot_count, seller_count, last_seen_at) of one unmatched text (incremental)."""
    rows = helpers.fetch(
        settings,
        "select snapshot_count, seller_count, last_seen_at"
        " from inc.catalog_availability_unmatched where availability_raw = $1",
        text,
    )
    assert len(rows) == 1, rows
    return tuple(rows[0].values())


def quarantined_count(settings: Settings) -> int:
    sql = "select count(*) as n from inc.catalog_quarantined_snapshots"
    n: int = helpers.fetch(settings, sql)[0]["n"]
    return n


def arrived_count(settings: Settings) -> int:
    sql = "select count(*) as n from inc.int_price_snapshots_arrived"
    n: int = helpers.fetch(settings, sql)[0]["n"]
    return n


def test_incremental_refreshes_equal_full_rebuilds(db: Settings) -> None:
    # 0. the first incremental build has no state: it is a full one
    assert_incremental_equals_full(db)
    base = offer(db, "azul", "tlamagames")

    # 1. a scrape cycle: new prices, a sell-out, a NULL price, unchanged offers
    t1 = MAX_SCRAPED_AT + timedelta(hours=1)
    cycle = []
    for slug, seller in {(r["product_name_normalized"], r["seller"]) for r in ROWS[:60]}:
        cycle.append({**_latest(slug, seller), "scraped_at": t1})
    cycle.append({**_latest("azul", "tlamagames"), "scraped_at": t1, "price": Decimal("1.00")})
    cycle.append({**_latest("dixit", "tlamagase"), "scraped_at": t1, "availability": "Vyprodáno"})
    cycle.append({**_latest("carcassonne", "tlamagames"), "scraped_at": t1, "price": None})
    # sold out now, back in stock in the next cycle (an event spanning two runs)
    cycle.append(
        {**_latest("patchwork", "tlamagames"), "scraped_at": t1, "availability": "Vyprodáno"}
    )
    # unmatched texts (trimmed like staging) from two sellers; a quarantined row (blank slug)
    ask = {"scraped_at": t1, "availability": ASK}
    cycle.append({**_latest("kryci-jmena", "tlamagames"), **ask, "availability": f" {ASK}\u00a0"})
    cycle.append({**_latest("kryci-jmena", "tlamagase"), **ask})
    cycle.append({**_latest("kryci-jmena", "tlamagase"), "scraped_at": t1,
                  "product_name_normalized": " "})
    # one new row for an offer (the one-row merge): a new tag text is normalized again, a blank
    # one keeps the stored tags
    cycle.append({**_latest("ubongo", "hernizona"), "scraped_at": t1,
                  "categories": "Postřehové\u00a0 hry , logické,"})
    cycle.append({**_latest("patchwork", "tlamagase"), "scraped_at": t1, "categories": " \u00a0"})
    helpers.load_rows(db, cycle)
    assert_incremental_equals_full(db)
    assert arrived_count(db) == len(cycle)  # only the new rows were read
    assert unmatched(db, ASK) == (2, 2, t1)
    # the blank-slug row (the cycle also repeats quarantined fixture rows)
    assert helpers.fetch(
        db,
        "select reason from inc.catalog_quarantined_snapshots where scraped_at = $1"
        " and seller = 'tlamagase' and slug = ' '",
        t1,
    )[0]["reason"] == "blank_slug"
    base_quarantined = quarantined_count(db)
    assert offer(db, "ubongo", "hernizona")["categories"] == ["logické", "postřehové hry"]
    assert offer(db, "patchwork", "tlamagase")["categories"] == ["logické", "pro 2 hráče"]
    azul = offer(db, "azul", "tlamagames")
    assert azul["current_price"] == Decimal("1.00") and azul["min_price"] == Decimal("1.00")
    assert azul["lowest_price_at"] == t1
    assert azul["snapshot_count"] == base["snapshot_count"] + 2  # the cycle row + the price row
    # the cycle row (old price) and the 1.00 row share t1: the higher id (1.00) is in force
    azul_steps = steps(db, "azul", "tlamagames")
    assert azul_steps[-1] == (t1, Decimal("1.00"), base["current_price"], None)
    assert azul_steps[-2][3] == t1

    # 2. late rows (older than every merged row) with a new lowest price; a brand-new game; a new
    #    seller on an old game; quarantined rows (negative price, blank seller)
    late = MAX_SCRAPED_AT - timedelta(days=3)
    helpers.load_rows(db, [
        {**_latest("bang", "tlamagames"), "scraped_at": late, "price": Decimal("0.50")},
        {**_latest("bang", "tlamagames"), "scraped_at": t1 + timedelta(minutes=1)},
        {**_latest("azul", "tlamagames"), "scraped_at": t1 + timedelta(minutes=1),
         "product_name_normalized": "uplne-nova-hra", "product_name_original": "Úplně nová hra",
         "price": Decimal("399.00"), "url": "https://example.test/nova"},
        {**_latest("azul", "tlamagames"), "scraped_at": t1 + timedelta(minutes=1),
         "seller": "novy-obchod", "price": Decimal("2.00"), "availability": ASK},
        # a late unmatched row: counted, last_seen_at unchanged; a second unmatched text
        {**_latest("kryci-jmena", "tlamagames"), "scraped_at": late, "availability": ASK},
        {**_latest("kryci-jmena", "tlamagames"), "scraped_at": late, "availability": "Zeptejte se"},
        {**_latest("azul", "tlamagames"), "scraped_at": t1, "price": Decimal("-1.00")},
        {**_latest("azul", "tlamagames"), "scraped_at": t1, "seller": " "},
        # after as_of: in the offer state, in no deals model (its new-lowest events are in the
        # event state only)
        {**_latest("dixit", "tlamagase"), "scraped_at": AS_OF + timedelta(hours=1),
         "price": Decimal("0.10")},
        # back in stock after the sell-out merged by the previous run
        {**_latest("patchwork", "tlamagames"), "scraped_at": t1 + timedelta(minutes=1)},
        # late rows changing old events: a sell-out between two available snapshots (its next
        # snapshot becomes back in stock); a price below the one that set the lowest-ever and
        # 90-day events of 2026-10-10 (929): those events go, the late 900 gets them
        {**_latest("azul", "tlamagase"), "scraped_at": datetime(2026, 10, 1, 11, tzinfo=UTC),
         "availability": "Vyprodáno"},
        {**_latest("osadnici-z-katanu", "svet-her"),
         "scraped_at": datetime(2026, 9, 1, 9, tzinfo=UTC), "price": Decimal("900.00")},
    ])
    assert_incremental_equals_full(db)
    assert unmatched(db, ASK) == (4, 3, t1 + timedelta(minutes=1))
    assert unmatched(db, "Zeptejte se") == (1, 1, late)
    assert quarantined_count(db) == base_quarantined + 2
    bang = offer(db, "bang", "tlamagames")
    assert bang["min_price"] == Decimal("0.50") and bang["lowest_price_at"] == late
    assert offer(db, "uplne-nova-hra", "tlamagames")["snapshot_count"] == 1
    assert offer(db, "azul", "novy-obchod")["current_price"] == Decimal("2.00")
    bang_steps = steps(db, "bang", "tlamagames")
    assert (late, Decimal("0.50")) in [(s[0], s[1]) for s in bang_steps]
    assert offer(db, "dixit", "tlamagase")["current_price"] == Decimal("0.10")
    dixit_steps = steps(db, "dixit", "tlamagase")
    assert dixit_steps[-1][3] is None and Decimal("0.10") not in [s[1] for s in dixit_steps]
    assert not helpers.fetch(
        db, "select 1 from inc.catalog_deal_events where happened_at > $1", AS_OF
    )
    assert helpers.fetch(
        db,
        "select event_happened_at from inc_state.int_deal_events_merged"
        " where slug = 'dixit' and seller = 'tlamagase'",
    )[0]["event_happened_at"][-1] == AS_OF + timedelta(hours=1)
    assert ("back_in_stock", Decimal("449.00"), t1 + timedelta(minutes=1)) in events(
        db, "patchwork", "tlamagames"
    )
    nov19 = datetime(2026, 11, 19, 11, tzinfo=UTC)
    assert events(db, "azul", "tlamagase") == [("back_in_stock", Decimal("819.00"), nov19)]
    sep1, oct10 = datetime(2026, 9, 1, 9, tzinfo=UTC), datetime(2026, 10, 10, 9, tzinfo=UTC)
    osadnici = events(db, "osadnici-z-katanu", "svet-her")
    assert ("new_lowest_ever", Decimal("900.00"), sep1) in osadnici
    assert not [e for e in osadnici if e[2] == oct10]

    # 2b. a run that fails after the quarantine/unmatched states committed, before the offer
    #     state and its ledger write: the next run takes the same rows in again, counted once
    #     (its back-in-stock event too: the deal event state committed it before the failure)
    t2 = t1 + timedelta(seconds=90)
    helpers.load_rows(db, [
        {**_latest("kryci-jmena", "tlamagames"), "scraped_at": t2, "availability": ASK},
        {**_latest("kryci-jmena", "tlamagames"), "scraped_at": t2, "price": Decimal("-5.00")},
        {**_latest("kryci-jmena", "tlamagames"), "scraped_at": t2 + timedelta(seconds=1)},
    ])
    build(db, "inc", full=False, exclude="int_seller_offers_merged+")
    assert unmatched(db, ASK) == (5, 3, t2)
    assert quarantined_count(db) == base_quarantined + 3
    assert_incremental_equals_full(db)
    assert arrived_count(db) == 3  # the same three rows again
    back = ("back_in_stock", Decimal("379.00"), t2 + timedelta(seconds=1))
    assert events(db, "kryci-jmena", "tlamagames").count(back) == 1
    assert unmatched(db, ASK) == (5, 3, t2)
    assert quarantined_count(db) == base_quarantined + 3

    # 3. ids committing out of order: a transaction takes its ids, a later one commits, the
    #    refresh runs, then the first commits (a late row, too: same scraped_at as the latest,
    #    lower id than the rows merged meanwhile)
    t3 = t1 + timedelta(minutes=2)

    async def out_of_order() -> None:
        slow = await asyncpg.connect(db.database_url)
        try:
            tx = slow.transaction()
            await tx.start()
            row = {**_latest("azul", "tlamagames"), "scraped_at": t3, "price": Decimal("0.25"),
                   "availability": ASK}
            await slow.copy_records_to_table(
                "product_price_snapshots", schema_name="public", columns=list(COLUMNS),
                records=[tuple(row.get(c) for c in COLUMNS)],
            )
            await asyncio.to_thread(helpers.load_rows, db, [
                {**_latest("azul", "tlamagames"), "scraped_at": t3, "price": Decimal("3.00")},
            ])
            await asyncio.to_thread(build, db, "inc", full=False)
            seen = await asyncio.to_thread(offer, db, "azul", "tlamagames")
            assert seen["current_price"] == Decimal("3.00")
            await tx.commit()
        finally:
            await slow.close()

    asyncio.run(out_of_order())
    assert_incremental_equals_full(db)
    assert unmatched(db, ASK) == (6, 3, t3)  # the slow row arrived after its commit
    azul = offer(db, "azul", "tlamagames")
    # same scraped_at: the higher id (3.00, committed first) stays the latest
    assert azul["current_price"] == Decimal("3.00") and azul["min_price"] == Decimal("0.25")
    # ... and the only price in force at t3: the 0.25 row never starts a step
    azul_steps = steps(db, "azul", "tlamagames")
    assert azul_steps[-2:] == [
        (t1, Decimal("1.00"), base["current_price"], t3),
        (t3, Decimal("3.00"), Decimal("1.00"), None),
    ]

    # 4. nothing new: nothing arrives, nothing changes
    before = {mart: mart_rows(db, "inc", mart) for mart in MARTS}
    build(db, "inc", full=False)
    assert arrived_count(db) == 0
    assert {mart: mart_rows(db, "inc", mart) for mart in MARTS} == before
