{{
    config(
        materialized='table',
        meta={'analyze_columns': ['slug', 'seller', 'seller_priority']},
        indexes=[
            {'columns': ['slug', 'seller'], 'unique': true},
            {'columns': ['seller']},
        ],
    )
}}

{#
    The served form of the incremental state (int_seller_offers_merged, one row per offer):
    rebuilt whole each run (~44k rows, well under a second), so the swap publishes it with the
    rest of `catalog_build`. Adds the seller ranking, the normalized tag list and the latest
    snapshot to the stored change points; casts prices to the contract's numeric(12, 2). The tag
    list comes normalized from the state (normalize_categories, run when an offer's tag text
    changes).
#}

with

offers as (
    select
        slug,
        seller,
        product_name,
        url,
        image_url,
        description,
        availability_raw,
        current_price,
        last_known_price,
        min_price,
        max_price,
        snapshot_count,
        is_available,
        is_preorder,
        latest_is_change_point,
        lowest_price_at,
        first_seen_at,
        last_seen_at,
        product_codes,
        categories,
        change_points
    from {{ ref('int_seller_offers_merged') }}
),

seller_priority_seed as (
    select
        seller,
        priority
    from {{ ref('seller_priority') }}
),

ranked as (
    select
        offers.*,
        row_number() over (
            partition by offers.slug
            order by
                seller_priority_seed.priority asc nulls last,
                offers.last_seen_at desc,
                offers.seller collate "C" asc -- noqa: RF02
        ) as seller_priority
    from offers
    left join seller_priority_seed on offers.seller = seller_priority_seed.seller
),

final as (
    select
        slug,
        seller,
        product_name,
        url,
        image_url,
        description,
        availability_raw,
        seller_priority::int as seller_priority,
        current_price::numeric(12, 2) as current_price,
        last_known_price::numeric(12, 2) as last_known_price,
        min_price::numeric(12, 2) as min_price,
        max_price::numeric(12, 2) as max_price,
        snapshot_count,
        is_available,
        is_preorder,
        lowest_price_at,
        first_seen_at,
        last_seen_at,
        product_codes,
        categories,
        case
            when latest_is_change_point then change_points
            else
                change_points || jsonb_build_array(
                    jsonb_build_array({{ to_utc_iso8601('last_seen_at') }}, current_price, is_available)
                )
        end as price_points
    from ranked
)

select * from final
