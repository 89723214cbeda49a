{{
    config(
        materialized='table',
        pre_hook=["set local work_mem = '512MB'"],
        indexes=[
            {'columns': ['slug', 'seller', 'valid_from']},
        ],
    )
}}

{#
    The price in force of every (slug, seller) as a step function: one row per change point.
    The price in force at t is the seller's latest snapshot at or before t with a non-NULL price
    (ties on scraped_at -> highest snapshot_id), so NULL-price snapshots and availability changes
    never start a step. A row holds `price` from `valid_from` until `valid_to` (exclusive; NULL =
    still in force at `as_of`). Snapshots after `as_of` (the dbt var `as_of`, default the build's
    start) are ignored, so a fixture build is deterministic.
    One sort by (slug, seller, scraped_at, snapshot_id) serves the three window passes. A table:
    read by catalog_slug_seller_deals and catalog_deal_events; keyed by (slug, seller, valid_from)
    so it can become incremental (recompute the keys touched by new snapshots).
#}

{%- set as_of = var('as_of', none) or run_started_at.isoformat() %}

with

snapshots as (
    select
        snapshot_id,
        price,
        scraped_at,
        slug collate "C" as slug,
        seller collate "C" as seller
    from {{ ref('stg_scraper__product_price_snapshots') }}
    where
        price is not null
        and scraped_at <= '{{ as_of }}'::timestamptz
),

-- of several priced snapshots at the same instant only the highest id is ever in force
marked as (
    select
        *,
        lead(scraped_at) over seller_history as next_scraped_at
    from snapshots
    window seller_history as (partition by slug, seller order by scraped_at asc, snapshot_id asc)
),

in_force as (
    select
        *,
        lag(price) over seller_history as previous_price
    from marked
    where next_scraped_at is distinct from scraped_at
    window seller_history as (partition by slug, seller order by scraped_at asc, snapshot_id asc)
),

changed as (
    select
        *,
        lead(scraped_at) over seller_history as valid_to
    from in_force
    where previous_price is distinct from price
    window seller_history as (partition by slug, seller order by scraped_at asc, snapshot_id asc)
),

final as (
    select
        slug collate "default" as slug, -- noqa: RF02
        seller collate "default" as seller, -- noqa: RF02
        snapshot_id,
        price::numeric(12, 2) as price,
        previous_price::numeric(12, 2) as previous_price,
        scraped_at as valid_from,
        valid_to
    from changed
)

select * from final
