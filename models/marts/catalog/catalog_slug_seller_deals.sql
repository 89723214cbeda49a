{{
    config(
        materialized='table',
        meta={'analyze_columns': ['slug', 'seller', 'discount_percent', 'is_available', 'is_preorder', 'categories']},
        indexes=[
            {'columns': ['slug', 'seller'], 'unique': true},
            {'columns': ['discount_percent desc', 'slug', 'seller']},
        ],
    )
}}

{#
    One row per (slug, seller) of catalog_slug_seller_summary: window lows, the current reduction,
    its EU prior price and the discount (definitions in docs/DESIGN.md "Deals"). Reads the
    steps of int_seller_prices_changed inside the windows (the lowest price ever in force comes
    with the current step, a running minimum kept in the state), not the whole history.
    `as_of` = the dbt var `as_of`, default the build's start time.
#}

{%- set as_of = var('as_of', none) or run_started_at.isoformat() %}

with

sellers as (
    select
        slug,
        seller,
        is_available,
        is_preorder,
        first_seen_at
    from {{ ref('catalog_slug_seller_summary') }}
),

-- the slug's name and tags as catalog_slug_summary has them (one macro), computed here so the
-- deals do not wait for that model
products as (
    {{ slug_labels(ref('catalog_slug_seller_summary')) }}
),

steps as (
    select
        slug,
        seller,
        price,
        previous_price,
        lowest_ever_price,
        valid_from,
        valid_to
    from {{ ref('int_seller_prices_changed') }}
),

as_of as (
    select '{{ as_of }}'::timestamptz as as_of
),

-- per window (30, 90, 365 days before as_of): the lowest price of the steps in force at some
-- moment of [as_of - days, as_of], and the latest moment it was in force (the step's end, or
-- as_of while it is still in force); one pass over the steps, no row per window
in_force as (
    select
        steps.slug,
        steps.seller,
        steps.price,
        coalesce(steps.valid_to, as_of.as_of) as in_force_until,
        coalesce(steps.valid_to, 'infinity'::timestamptz) as in_force_before
    from steps
    cross join as_of
    -- only steps of the widest window: the work stays the same as the history grows
    where coalesce(steps.valid_to, 'infinity'::timestamptz) > as_of.as_of - interval '365 days'
),

lows as (
    select
        in_force.slug,
        in_force.seller,
        min(in_force.price) filter (
            where in_force.in_force_before > as_of.as_of - interval '30 days'
        ) as low_30d_price,
        (
            array_agg(in_force.in_force_until order by in_force.price asc, in_force.in_force_until desc)
            filter (where in_force.in_force_before > as_of.as_of - interval '30 days')
        )[1] as low_30d_at,
        min(in_force.price) filter (
            where in_force.in_force_before > as_of.as_of - interval '90 days'
        ) as low_90d_price,
        (
            array_agg(in_force.in_force_until order by in_force.price asc, in_force.in_force_until desc)
            filter (where in_force.in_force_before > as_of.as_of - interval '90 days')
        )[1] as low_90d_at,
        min(in_force.price) filter (
            where in_force.in_force_before > as_of.as_of - interval '365 days'
        ) as low_365d_price,
        (
            array_agg(in_force.in_force_until order by in_force.price asc, in_force.in_force_until desc)
            filter (where in_force.in_force_before > as_of.as_of - interval '365 days')
        )[1] as low_365d_at
    from in_force
    cross join as_of
    group by in_force.slug, in_force.seller
),

-- the step in force now; a reduction when it lowered the price (nothing rose since: it is the
-- latest change)
current_steps as (
    select
        slug,
        seller,
        price,
        previous_price,
        lowest_ever_price,
        valid_from
    from steps
    where valid_to is null
),

reductions as (
    select
        slug,
        seller,
        previous_price as reduced_from_price,
        valid_from as reduced_at
    from current_steps
    where previous_price > price
),

-- lowest price in force during [reduced_at - 30 days, reduced_at)
prior_prices as (
    select
        reductions.slug,
        reductions.seller,
        min(steps.price) as prior_price
    from reductions
    inner join steps
        on
            reductions.slug = steps.slug
            and reductions.seller = steps.seller
            and reductions.reduced_at > steps.valid_from
            and reductions.reduced_at - interval '30 days' < steps.valid_to
    group by reductions.slug, reductions.seller
),

joined as (
    select
        sellers.slug,
        sellers.seller,
        products.name,
        current_steps.price,
        lows.low_30d_price,
        lows.low_90d_price,
        lows.low_365d_price,
        current_steps.lowest_ever_price,
        reductions.reduced_from_price,
        case
            when sellers.first_seen_at <= reductions.reduced_at - interval '30 days'
                then prior_prices.prior_price
        end as prior_price,
        sellers.is_available,
        sellers.is_preorder,
        sellers.is_available or sellers.is_preorder as is_offered,
        lows.low_30d_at,
        lows.low_90d_at,
        lows.low_365d_at,
        reductions.reduced_at,
        sellers.first_seen_at,
        as_of.as_of,
        products.categories
    from sellers
    cross join as_of
    inner join products on sellers.slug = products.slug
    left join current_steps on sellers.slug = current_steps.slug and sellers.seller = current_steps.seller
    left join lows on sellers.slug = lows.slug and sellers.seller = lows.seller
    left join reductions on sellers.slug = reductions.slug and sellers.seller = reductions.seller
    left join prior_prices on sellers.slug = prior_prices.slug and sellers.seller = prior_prices.seller
),

final as (
    select
        slug,
        seller,
        name,
        price,
        low_30d_price,
        low_90d_price,
        low_365d_price,
        lowest_ever_price,
        reduced_from_price,
        prior_price,
        case
            when is_offered and price < prior_price
                then round((prior_price - price) / prior_price * 100, 1)::numeric(5, 1)
        end as discount_percent,
        is_available,
        is_preorder,
        coalesce(is_offered and price = low_30d_price and first_seen_at <= as_of - interval '30 days', false)
            as is_lowest_30d,
        coalesce(is_offered and price = low_90d_price and first_seen_at <= as_of - interval '90 days', false)
            as is_lowest_90d,
        coalesce(
            is_offered and price = low_365d_price and first_seen_at <= as_of - interval '365 days', false
        ) as is_lowest_365d,
        coalesce(
            is_offered and price = lowest_ever_price and first_seen_at <= as_of - interval '90 days', false
        ) as is_lowest_ever,
        low_30d_at,
        low_90d_at,
        low_365d_at,
        reduced_at,
        first_seen_at,
        as_of,
        categories
    from joined
)

select * from final
