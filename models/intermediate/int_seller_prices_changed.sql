{{
    config(
        materialized='table',
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
    Unnests the incremental state int_seller_prices_merged (the whole step function of each
    offer, a few steps per offer), never the raw history: the steps up to as_of are the step
    function of the snapshots up to as_of (a step depends only on earlier snapshots, and tied
    snapshots share their scraped_at), so as_of only cuts each offer's step list. A table: read
    by catalog_slug_seller_deals and catalog_deal_events.
#}

{%- set as_of = var('as_of', none) or run_started_at.isoformat() %}

with

offers as (
    select
        slug,
        seller,
        step_valid_from,
        step_price,
        step_snapshot_id
    from {{ ref('int_seller_prices_merged') }}
),

as_of as (
    select '{{ as_of }}'::timestamptz as as_of
),

-- the arrays are in time order: the previous step is at n - 1, the next at n + 1 (NULL past the ends)
steps as (
    select
        offers.slug,
        offers.seller,
        offers.step_snapshot_id[step.step_number] as snapshot_id,
        offers.step_price[step.step_number] as price,
        offers.step_price[step.step_number - 1] as previous_price,
        offers.step_valid_from[step.step_number] as valid_from,
        offers.step_valid_from[step.step_number + 1] as next_valid_from
    from offers
    cross join lateral generate_subscripts(offers.step_valid_from, 1) as step (step_number)
),

final as (
    select
        steps.slug,
        steps.seller,
        steps.snapshot_id,
        steps.price::numeric(12, 2) as price,
        steps.previous_price::numeric(12, 2) as previous_price,
        steps.valid_from,
        case when steps.next_valid_from <= as_of.as_of then steps.next_valid_from end as valid_to
    from steps
    cross join as_of
    where steps.valid_from <= as_of.as_of
)

select * from final
