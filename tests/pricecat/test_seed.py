"""`pricecat seed` on throwaway databases: determinism, exact shape, the append cycle."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pricecat import seed
from pricecat.config import Settings
from tests import helpers
from tests.pricecat._util import CHECKSUM_SQL, fetchval, run_seed

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
ROWS = 20_000
SLUGS = 500


@pytest.fixture(scope="module")
def seeded(base_settings: Settings) -> Iterator[Settings]:
    """20,000 rows / 500 slugs, seed 7, newest scrape at NOW."""
    settings = helpers.settings_for_database(base_settings, helpers.unique_db_name("pricecat_seed"))
    helpers.create_database(settings)
    try:
        assert run_seed(settings, rows=ROWS, slugs=SLUGS) == 0
        yield settings
    finally:
        helpers.drop_database(settings)


@pytest.fixture()
def scratch(base_settings: Settings) -> Iterator[Settings]:
    name = helpers.unique_db_name("pricecat_seedx")
    settings = helpers.settings_for_database(base_settings, name)
    helpers.create_database(settings)
    try:
        yield settings
    finally:
        helpers.drop_database(settings)


def test_exact_row_slug_and_pair_counts(seeded: Settings) -> None:
    row = helpers.fetch(
        seeded,
        """
        select
            count(*) as row_count,
            count(distinct product_name_normalized) as slug_count,
            count(distinct (product_name_normalized, product_code)) as pair_count,
            count(*) filter (where product_code is null or product_code = '') as no_code
        from public.product_price_snapshots
        """,
    )[0]
    assert row["row_count"] == ROWS
    assert row["slug_count"] == SLUGS
    # 11,399 pairs for 11,059 slugs, scaled: 500 slugs -> 515 pairs
    assert seed.expected_pairs(SLUGS) == 515
    assert row["pair_count"] == 515
    assert row["no_code"] == 0


def test_default_pair_ratio_is_the_production_one() -> None:
    assert seed.expected_pairs(11_059) == 11_399


def test_sellers(seeded: Settings) -> None:
    sellers = {r["seller"] for r in helpers.fetch(
        seeded, "select distinct seller from public.product_price_snapshots"
    )}
    assert sellers == set(seed.SELLER_NAMES)
    assert len(sellers) == 8
    assert {"tlamagames", "tlamagase"} <= sellers
    row = helpers.fetch(
        seeded,
        """
        with per_slug as (
            select
                product_name_normalized,
                count(distinct seller) as seller_count,
                bool_or(seller = 'tlamagames') as has_games,
                bool_or(seller = 'tlamagase') as has_se
            from public.product_price_snapshots
            group by product_name_normalized
        )
        select
            avg(seller_count) as avg_sellers,
            avg(has_games::int) as games_share,
            avg(has_se::int) as se_share,
            avg((seller_count >= 2)::int) as multi_share
        from per_slug
        """,
    )[0]
    assert float(row["avg_sellers"]) > 2.5
    assert float(row["games_share"]) > 0.75
    assert float(row["se_share"]) > 0.65
    assert float(row["multi_share"]) > 0.8


def test_every_availability_variant_and_null(seeded: Settings) -> None:
    rows = helpers.fetch(
        seeded, "select distinct availability from public.product_price_snapshots"
    )
    values = {r["availability"] for r in rows}
    missing = set(seed.AVAILABILITY_TEXTS) - values
    assert not missing, missing
    assert None in values
    # noise on top: padded / upper-cased variants of the same texts
    assert any(v is not None and v != v.strip() for v in values)
    assert any(v is not None and v.isupper() for v in values)


def test_null_price_share_is_about_half_a_percent(seeded: Settings) -> None:
    share = float(fetchval(
        seeded, "select avg((price is null)::int) from public.product_price_snapshots"
    ))
    assert 0.003 <= share <= 0.008, share


def test_time_window_order_and_freshness(seeded: Settings) -> None:
    row = helpers.fetch(
        seeded,
        """
        select min(scraped_at) as first_at, max(scraped_at) as last_at
        from public.product_price_snapshots
        """,
    )[0]
    assert row["last_at"] == NOW
    assert NOW - timedelta(days=121) <= row["first_at"] <= NOW - timedelta(days=100)
    out_of_order = fetchval(
        seeded,
        """
        select count(*) from (
            select scraped_at, lag(scraped_at) over (order by id) as previous_at
            from public.product_price_snapshots
        ) as t
        where scraped_at < previous_at
        """,
    )
    assert out_of_order == 0


def test_names_slugs_and_noisy_fields(seeded: Settings) -> None:
    row = helpers.fetch(
        seeded,
        """
        select
            bool_and(product_name_normalized ~ '^[a-z0-9]+(-[a-z0-9]+)*$') as slugs_clean,
            count(*) filter (where product_name_original ~ '[áčďéěíňóřšťúůýž]') as with_diacritics,
            count(*) filter (where description = '') as empty_descriptions,
            count(*) filter (where description is null) as null_descriptions,
            count(*) filter (where image_url = '') as empty_images,
            count(*) filter (where image_url is null) as null_images,
            count(*) filter (where categories like ' %' or categories like '%  %') as padded_tags,
            count(*) filter (where categories ~ '[[:upper:]]{4}') as upper_tags,
            count(*) filter (where categories is null) as null_tags
        from public.product_price_snapshots
        """,
    )[0]
    assert row["slugs_clean"] is True
    for key in ("with_diacritics", "empty_descriptions", "null_descriptions", "empty_images",
                "null_images", "padded_tags", "upper_tags", "null_tags"):
        assert row[key] > 0, key
    # one slug, one canonical name (tlamagames spells it as-is); slug = slugify(name)
    names = helpers.fetch(
        seeded,
        """
        select distinct product_name_original, product_name_normalized
        from public.product_price_snapshots
        where seller = 'tlamagames'
        """,
    )
    renamed = [r for r in names if r["product_name_original"].endswith(" (2. vydání)")]
    assert renamed  # a few listings are renamed mid-history
    for r in names:
        name = r["product_name_original"].removesuffix(" (2. vydání)")
        assert seed.slugify(name) == r["product_name_normalized"]


def test_price_changes_and_sales(seeded: Settings) -> None:
    row = helpers.fetch(
        seeded,
        """
        with per_listing as (
            select
                product_name_normalized,
                seller,
                count(distinct price) as price_count,
                min(price) as low,
                max(price) as high
            from public.product_price_snapshots
            group by product_name_normalized, seller
        )
        select
            avg((price_count > 1)::int) as changed_share,
            count(*) filter (where low < high * 0.85) as deep_discounts
        from per_listing
        """,
    )[0]
    assert float(row["changed_share"]) > 0.1
    assert row["deep_discounts"] > 0


def test_deterministic_and_flags(scratch: Settings) -> None:
    small = {"rows": 4_000, "slugs": 150}
    assert run_seed(scratch, **small) == 0
    first = fetchval(scratch, CHECKSUM_SQL)
    # refuses to seed over existing rows; --if-empty skips
    assert run_seed(scratch, **small) == 1
    assert run_seed(scratch, if_empty=True, **small) == 0
    assert fetchval(scratch, "select count(*) from public.product_price_snapshots") == 4_000
    # same seed and now -> identical content
    assert run_seed(scratch, truncate=True, **small) == 0
    assert fetchval(scratch, CHECKSUM_SQL) == first
    # another seed -> other content, same shape
    assert run_seed(scratch, truncate=True, seed=8, **small) == 0
    assert fetchval(scratch, CHECKSUM_SQL) != first
    assert fetchval(scratch, "select count(*) from public.product_price_snapshots") == 4_000
    # another now -> shifted content
    assert run_seed(scratch, truncate=True, now="2025-03-02T12:00:00Z", **small) == 0
    assert fetchval(scratch, CHECKSUM_SQL) != first
    assert fetchval(scratch, "select max(scraped_at) from public.product_price_snapshots") == (
        NOW + timedelta(days=1)
    )


def test_too_few_rows_is_an_error(scratch: Settings) -> None:
    assert run_seed(scratch, rows=10, slugs=100) == 2
    assert fetchval(scratch, "select count(*) from public.product_price_snapshots") == 0


def test_append_cycle(scratch: Settings) -> None:
    small = {"rows": 4_000, "slugs": 150}
    assert run_seed(scratch, **small) == 0
    before_max = fetchval(scratch, "select max(scraped_at) from public.product_price_snapshots")
    listings = fetchval(
        scratch,
        "select count(distinct (product_name_normalized, seller)) "
        "from public.product_price_snapshots",
    )
    assert run_seed(scratch, append_cycle=True, **small) == 0
    assert fetchval(scratch, "select count(*) from public.product_price_snapshots") == (
        4_000 + listings
    )
    row = helpers.fetch(
        scratch,
        """
        select
            count(*) as new_rows,
            count(distinct (product_name_normalized, seller)) as new_listings,
            min(scraped_at) as first_at,
            max(scraped_at) as last_at,
            min(id) as first_id
        from public.product_price_snapshots
        where scraped_at > $1
        """,
        before_max,
    )[0]
    assert row["new_rows"] == listings
    assert row["new_listings"] == listings
    assert row["first_at"] > before_max
    # --now is not later than max + 15 min, so the cycle ends 15 minutes after the old newest row
    assert row["last_at"] == before_max + timedelta(minutes=15)
    assert row["first_id"] == 4_001  # appended after every seeded row
    # a few prices or availabilities change, most stay
    changed = fetchval(
        scratch,
        """
        with ranked as (
            select
                product_name_normalized, seller, price, availability,
                row_number() over (
                    partition by product_name_normalized, seller order by scraped_at desc, id desc
                ) as rn
            from public.product_price_snapshots
        )
        select count(*)
        from ranked as a
        inner join ranked as b
            on a.product_name_normalized = b.product_name_normalized
            and a.seller = b.seller
        where a.rn = 1 and b.rn = 2
            and (a.price is distinct from b.price or a.availability is distinct from b.availability)
        """,
    )
    assert 0 < changed < listings * 0.2
    # deterministic: the same seed + state gives the same cycle
    first = fetchval(scratch, CHECKSUM_SQL)
    assert run_seed(scratch, truncate=True, **small) == 0
    assert run_seed(scratch, append_cycle=True, **small) == 0
    assert fetchval(scratch, CHECKSUM_SQL) == first
    # same result when the (slug, seller, scraped_at) index is missing (the other query path)
    helpers.fetch(scratch, "drop index public.idx_product_price_snapshots_slug_seller_scraped")
    assert run_seed(scratch, truncate=True, **small) == 0
    assert run_seed(scratch, append_cycle=True, **small) == 0
    assert fetchval(scratch, CHECKSUM_SQL) == first
    # a second cycle lands after the first one
    assert run_seed(scratch, append_cycle=True, **small) == 0
    assert fetchval(scratch, "select max(scraped_at) from public.product_price_snapshots") == (
        before_max + timedelta(minutes=30)
    )


def test_append_cycle_on_empty_table_fails(scratch: Settings) -> None:
    assert run_seed(scratch, append_cycle=True) == 1


def test_cli_seed(scratch: Settings) -> None:
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "DATABASE_URL": scratch.database_url}
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "pricecat"), "seed", "--rows", "3000", "--slugs",
         "100", "--seed", "3", "--now", "2025-01-01T00:00:00Z"],
        cwd=root, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "3,000 rows, 100 slugs, 103 (slug, product_code) pairs" in proc.stdout
    assert fetchval(scratch, "select count(*) from public.product_price_snapshots") == 3_000


def test_history_multiplier(scratch: Settings) -> None:
    """--history-multiplier 3: the same catalogue, 3x the rows, 3x further back, same end."""
    small = {"rows": 4_000, "slugs": 150}
    listings_sql = (
        "select distinct product_name_normalized, seller, product_code "
        "from public.product_price_snapshots"
    )
    assert run_seed(scratch, **small) == 0
    one = {tuple(r) for r in helpers.fetch(scratch, listings_sql)}
    one_first = fetchval(scratch, "select min(scraped_at) from public.product_price_snapshots")

    assert run_seed(scratch, truncate=True, history_multiplier=3, **small) == 0
    three = {tuple(r) for r in helpers.fetch(scratch, listings_sql)}
    assert three == one  # same slugs, sellers and codes
    assert {r[0] for r in three} == {r[0] for r in one}
    assert len({r[0] for r in three}) == 150
    row = helpers.fetch(
        scratch,
        """
        select count(*) as n, min(scraped_at) as first_at, max(scraped_at) as last_at
        from public.product_price_snapshots
        """,
    )[0]
    assert row["n"] == 12_000
    assert row["last_at"] == NOW
    # 1x reaches back 100-121 days (see test_time_window_order_and_freshness); 3x: 300-363
    assert NOW - timedelta(days=363) <= row["first_at"] <= NOW - timedelta(days=300)
    back_one = (NOW - one_first).total_seconds()
    back_three = (NOW - row["first_at"]).total_seconds()
    assert 2.8 <= back_three / back_one <= 3.2, (back_one, back_three)
    # every listing gets more snapshots: the 3x history is denser per listing, not wider
    per_listing = helpers.fetch(
        scratch,
        """
        select avg(n)::float8 as mean
        from (
            select count(*) as n from public.product_price_snapshots
            group by product_name_normalized, seller
        ) as t
        """,
    )[0]
    assert per_listing["mean"] == pytest.approx(12_000 / len({(r[0], r[1]) for r in one}))
    # the past lands in the history partition, not in DEFAULT
    assert fetchval(
        scratch, "select count(*) from public.product_price_snapshots_default"
    ) == 0
    # deterministic, and --rows / --slugs still mean what they say
    first = fetchval(scratch, CHECKSUM_SQL)
    assert run_seed(scratch, truncate=True, history_multiplier=3, **small) == 0
    assert fetchval(scratch, CHECKSUM_SQL) == first
    assert run_seed(scratch, truncate=True, history_multiplier=0, **small) == 2


def test_cli_history_multiplier(scratch: Settings) -> None:
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "DATABASE_URL": scratch.database_url}
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "pricecat"), "seed", "--rows", "3000", "--slugs",
         "100", "--seed", "3", "--now", "2025-01-01T00:00:00Z", "--history-multiplier", "2"],
        cwd=root, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "6,000 rows over 2 x 120 days, 100 slugs" in proc.stdout
    assert fetchval(scratch, "select count(*) from public.product_price_snapshots") == 6_000


def test_cycle_records_reports_the_price_changes(scratch: Settings) -> None:
    """seed.cycle_records' price_changes = the listings whose new row has another non-NULL price
    than their previous newest row (counted here in SQL after writing the rows)."""
    import asyncio

    import asyncpg

    assert run_seed(scratch, rows=4_000, slugs=150) == 0

    async def go() -> tuple[list[tuple[object, ...]], list[tuple[int, object, object]]]:
        conn = await asyncpg.connect(scratch.database_url)
        try:
            records, stats = await seed.cycle_records(conn, 5, None)
            await conn.copy_records_to_table(
                "product_price_snapshots", schema_name="public", columns=list(seed.COLUMNS),
                records=records,
            )
            return records, stats.extra["price_changes"]
        finally:
            await conn.close()

    records, changes = asyncio.run(go())
    changed_in_sql = helpers.fetch(
        scratch,
        """
        with ranked as (
            select
                product_name_normalized as slug, seller, price,
                row_number() over (
                    partition by product_name_normalized, seller order by scraped_at desc, id desc
                ) as rn
            from public.product_price_snapshots
        )
        select a.slug, a.seller, b.price as old_price, a.price as new_price
        from ranked as a
        inner join ranked as b on a.slug = b.slug and a.seller = b.seller
        where a.rn = 1 and b.rn = 2 and a.price is not null and a.price is distinct from b.price
        """,
    )
    assert changes  # ~3 % of the ~450 listings
    assert {(r["slug"], r["seller"], r["old_price"], r["new_price"]) for r in changed_in_sql} == {
        (records[k][4], records[k][1], old, new) for k, old, new in changes
    }
    assert all(records[k][5] == new for k, _old, new in changes)
