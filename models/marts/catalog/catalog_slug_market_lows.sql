{{
    config(
        materialized='table',
        indexes=[
            {'columns': ['slug'], 'unique': true},
        ],
    )
}}

{#
    One row per slug: the market lows over all its sellers for 30/90/365 days (the lowest seller
    window low; ties -> the seller whose low was in force latest, then seller name), and whether
    today's cheapest offered price is such a low (the catalog cards' badges).
#}

with

seller_deals as (
    select
        slug,
        seller,
        price,
        low_30d_price,
        low_90d_price,
        low_365d_price,
        is_available,
        is_preorder,
        low_30d_at,
        low_90d_at,
        low_365d_at,
        first_seen_at,
        as_of
    from {{ ref('catalog_slug_seller_deals') }}
),

low_30d as (
    select distinct on (slug)
        slug,
        seller as low_30d_seller,
        low_30d_price,
        low_30d_at
    from seller_deals
    where low_30d_price is not null
    order by slug asc, low_30d_price asc, low_30d_at desc, seller asc
),

low_90d as (
    select distinct on (slug)
        slug,
        seller as low_90d_seller,
        low_90d_price,
        low_90d_at
    from seller_deals
    where low_90d_price is not null
    order by slug asc, low_90d_price asc, low_90d_at desc, seller asc
),

low_365d as (
    select distinct on (slug)
        slug,
        seller as low_365d_seller,
        low_365d_price,
        low_365d_at
    from seller_deals
    where low_365d_price is not null
    order by slug asc, low_365d_price asc, low_365d_at desc, seller asc
),

products as (
    select
        slug,
        min(price) filter (where is_available or is_preorder) as offered_price,
        min(first_seen_at) as first_seen_at,
        max(as_of) as as_of
    from seller_deals
    group by slug
),

final as (
    select
        products.slug,
        low_30d.low_30d_seller,
        low_90d.low_90d_seller,
        low_365d.low_365d_seller,
        products.offered_price,
        low_30d.low_30d_price,
        low_90d.low_90d_price,
        low_365d.low_365d_price,
        coalesce(
            products.offered_price = low_30d.low_30d_price
            and products.first_seen_at <= products.as_of - interval '30 days',
            false
        ) as is_lowest_30d,
        coalesce(
            products.offered_price = low_90d.low_90d_price
            and products.first_seen_at <= products.as_of - interval '90 days',
            false
        ) as is_lowest_90d,
        coalesce(
            products.offered_price = low_365d.low_365d_price
            and products.first_seen_at <= products.as_of - interval '365 days',
            false
        ) as is_lowest_365d,
        low_30d.low_30d_at,
        low_90d.low_90d_at,
        low_365d.low_365d_at
    from products
    left join low_30d on products.slug = low_30d.slug
    left join low_90d on products.slug = low_90d.slug
    left join low_365d on products.slug = low_365d.slug
)

select * from final
