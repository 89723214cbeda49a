{{
    config(
        materialized='table',
        indexes=[
            {'columns': ['slug', 'seller', 'valid_from']},
        ],
    )
}}

{#
    The price in force of every (slug, seller) as a step function, one row per change point, cut
    to the steps the deals need at as_of: the steps in force at some moment of the last 365 days
    up to as_of, and the steps in force during the 30 days before the step in force at as_of (its
    prior-price window, however old that step is). The price in force at t is the seller's latest
    snapshot at or before t with a non-NULL price (ties on scraped_at -> highest snapshot_id), so
    NULL-price snapshots and availability changes never start a step. A row holds `price` from
    `valid_from` until `valid_to` (exclusive; NULL = still in force at `as_of`). Snapshots after
    `as_of` (the dbt var `as_of`, default the build's start) are ignored, so a fixture build is
    deterministic.
    Reads the incremental state int_seller_prices_merged (each offer's whole step function as
    arrays in time order), never the raw history, and only the part of each offer's arrays the
    windows need: the bounds are found by binary search (width_bucket over the sorted
    step_valid_from), so the cost follows the offers and the steps inside the windows, not the
    length of the history. The steps up to as_of are the step function of the snapshots up to
    as_of (a step depends only on earlier snapshots, and tied snapshots share their scraped_at).
    A table: read by catalog_slug_seller_deals twice.
#}

{%- set as_of = var('as_of', none) or run_started_at.isoformat() %}

with

offers as (
    select
        slug,
        seller,
        step_valid_from,
        step_price,
        step_snapshot_id,
        step_lowest_price
    from {{ ref('int_seller_prices_merged') }}
),

as_of as (
    select '{{ as_of }}'::timestamptz as as_of
),

-- the step in force at as_of (0: none yet)
current_steps as (
    select
        offers.*,
        as_of.as_of,
        width_bucket(as_of.as_of, offers.step_valid_from) as current_step_number
    from offers
    cross join as_of
),

-- the first step needed: the one in force at as_of - 365 days, or the one in force 30 days before
-- the current step started, whichever is earlier (0 = before the first step)
ranges as (
    select
        *,
        greatest(
            least(
                width_bucket(as_of - interval '365 days', step_valid_from),
                width_bucket(step_valid_from[current_step_number] - interval '30 days', step_valid_from)
            ),
            1
        ) as first_step_number
    from current_steps
    where current_step_number > 0
),

-- the arrays are in time order: the previous step is at n - 1, the next at n + 1
steps as (
    select
        ranges.slug,
        ranges.seller,
        ranges.step_snapshot_id[step.step_number] as snapshot_id,
        ranges.step_price[step.step_number] as price,
        ranges.step_price[step.step_number - 1] as previous_price,
        ranges.step_lowest_price[step.step_number] as lowest_ever_price,
        ranges.step_valid_from[step.step_number] as valid_from,
        case
            when step.step_number < ranges.current_step_number
                then ranges.step_valid_from[step.step_number + 1]
        end as valid_to
    from ranges
    cross join lateral generate_series(ranges.first_step_number, ranges.current_step_number) as step (step_number)
),

final as (
    select
        slug,
        seller,
        snapshot_id,
        price::numeric(12, 2) as price,
        previous_price::numeric(12, 2) as previous_price,
        lowest_ever_price::numeric(12, 2) as lowest_ever_price,
        valid_from,
        valid_to
    from steps
)

select * from final
