{{
    config(
        materialized='table',
        meta={'analyze_columns': ['slug', 'seller', 'event_type', 'happened_at']},
        indexes=[
            {'columns': ['happened_at']},
            {'columns': ['slug', 'seller']},
        ],
    )
}}

{#
    Price and stock events per (slug, seller), over the whole history up to as_of:
    - new_lowest_ever: a step of the price in force lower than every earlier step;
    - new_lowest_90d: a step lower than every price in force during the 90 days before it;
    - back_in_stock: a snapshot that is available after one that was not (from price_points,
      which keep every availability change).
    The first step of an offer is no event (nothing to compare with). Each event depends only
    on history up to its own time, so an incremental run can emit the new ones from new steps.
#}

with

steps as (
    select
        slug,
        seller,
        price,
        valid_from,
        valid_to
    from {{ ref('int_seller_prices_changed') }}
),

seller_points as (
    select
        slug,
        seller,
        price_points
    from {{ ref('catalog_slug_seller_summary') }}
),

ranked_steps as (
    select
        *,
        min(price) over (
            partition by slug, seller order by valid_from asc
            rows between unbounded preceding and 1 preceding
        ) as earlier_min_price
    from steps
),

lowest_ever as (
    select
        slug,
        seller,
        'new_lowest_ever' as event_type,
        price,
        valid_from as happened_at
    from ranked_steps
    where price < earlier_min_price
),

-- the prices in force during the 90 days before a step: the earlier steps that ended after
-- valid_from - 90 days. An offer's steps are contiguous (an earlier step ends where the next one
-- starts), so they are the steps up to the previous one whose valid_to lies in
-- (previous valid_to - 90 days, previous valid_to]: one window frame over valid_to, read at the
-- previous step (timestamps have microsecond resolution, so "> x - 90 days" is
-- ">= x - (90 days - 1 microsecond)"). A self-join on the offer would pair every step with every
-- earlier one: quadratic in the history.
recent_mins as (
    select
        slug,
        seller,
        price,
        valid_from,
        min(price) over (
            partition by slug, seller order by valid_to asc
            range between interval '90 days -00:00:00.000001' preceding and current row
        ) as recent_min_price
    from steps
),

window_mins as (
    select
        slug,
        seller,
        price,
        valid_from,
        lag(recent_min_price) over (partition by slug, seller order by valid_from asc) as window_min_price
    from recent_mins
),

lowest_90d as (
    select
        slug,
        seller,
        'new_lowest_90d' as event_type,
        price,
        valid_from as happened_at
    from window_mins
    where price < window_min_price
),

-- price and time are parsed from the point's text only for the events (a fraction of the points)
points as (
    select
        seller_points.slug,
        seller_points.seller,
        price_point.point_number,
        price_point.point_value,
        (price_point.point_value ->> 2)::boolean as is_available
    from seller_points
    cross join
        lateral jsonb_array_elements(seller_points.price_points)
        with ordinality as price_point (point_value, point_number)
),

availability_changes as (
    select
        *,
        lag(is_available) over (partition by slug, seller order by point_number) as was_available
    from points
),

back_in_stock as (
    select
        slug,
        seller,
        'back_in_stock' as event_type,
        (point_value ->> 1)::numeric(12, 2) as price,
        (point_value ->> 0)::timestamptz as happened_at
    from availability_changes
    where is_available and not was_available
),

final as (
    select * from lowest_ever
    union all
    select * from lowest_90d
    union all
    select * from back_in_stock
)

select * from final
