"""`pricecat simulate-scraper`: each cycle appends one snapshot per (slug, seller), stamped with
the current time (not 15 minutes after the newest row), one cycle after the other."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from pricecat import simulate
from pricecat.config import Settings
from tests import helpers
from tests.pricecat._util import fetchval, run_seed


@pytest.fixture()
def small_table(base_settings: Settings) -> Iterator[Settings]:
    settings = helpers.settings_for_database(base_settings, helpers.unique_db_name("pricecat_sim"))
    helpers.create_database(settings)
    try:
        assert run_seed(settings, rows=4_000, slugs=100, now="2025-03-01T12:00:00Z") == 0
        yield settings
    finally:
        helpers.drop_database(settings)


def test_two_cycles_stamped_now(small_table: Settings) -> None:
    listings = fetchval(
        small_table,
        "select count(*) from (select distinct product_name_normalized, seller "
        "from public.product_price_snapshots) as t",
    )
    before_rows = fetchval(small_table, "select count(*) from public.product_price_snapshots")
    newest = fetchval(small_table, "select max(scraped_at) from public.product_price_snapshots")
    started = datetime.now(UTC).replace(microsecond=0)

    args = argparse.Namespace(every=1.0, cycles=2, seed=7)
    assert simulate.main(small_table, args) == 0

    rows = fetchval(small_table, "select count(*) from public.product_price_snapshots")
    assert rows == before_rows + 2 * listings
    finished = datetime.now(UTC)
    last_new = fetchval(
        small_table,
        "select max(scraped_at) from public.product_price_snapshots where scraped_at > $1",
        newest,
    )
    # a cycle ends at the time it was written (not 15 minutes after the newest row)
    assert started - timedelta(seconds=1) <= last_new <= finished + timedelta(seconds=1)
    # the second cycle (higher ids) ends after the first
    cycle_ends = fetchval(
        small_table,
        "select array_agg(s order by s) from (select max(scraped_at) as s "
        "from public.product_price_snapshots where scraped_at > $1 "
        "group by id > (select percentile_disc(0.5) within group (order by id) "
        "from public.product_price_snapshots where scraped_at > $1)) as t",
        newest,
    )
    assert len(cycle_ends) == 2 and cycle_ends[1] > cycle_ends[0]


def test_every_must_be_positive(small_table: Settings) -> None:
    assert simulate.main(small_table, argparse.Namespace(every=0, cycles=1, seed=7)) == 2
