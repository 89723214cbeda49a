{{
    config(
        materialized='table',
        indexes=[
            {'columns': ['slug'], 'unique': true},
            {'columns': ['categories'], 'type': 'gin'},
            {'columns': ['search_text public.gin_trgm_ops'], 'type': 'gin'},
            {'columns': ['min_price', 'slug']},
            {'columns': ['min_price desc nulls last', 'slug']},
            {'columns': ['availability_status']},
            {'columns': ['first_seen_at desc nulls last', 'slug']},
            {'columns': ['name collate "cs-x-icu"', 'slug']},
        ],
    )
}}

with

slug_sellers as (
    select
        slug,
        seller,
        image_url,
        description,
        seller_priority,
        current_price,
        min_price,
        is_available,
        is_preorder,
        lowest_price_at,
        first_seen_at,
        last_seen_at
    from {{ ref('catalog_slug_seller_summary') }}
),

-- name and tags: the definition the deals share
slug_labels as (
    {{ slug_labels(ref('catalog_slug_seller_summary')) }}
),

-- every "first seller in priority order with a value" is an ordered array's first element;
-- staging turned blank texts (NBSP-only included) into NULL, so "has a value" is "is not null"
aggregated as (
    select
        slug,
        (array_agg(image_url order by seller_priority) filter (where image_url is not null))[1] as hero_image_url,
        (array_agg(seller order by seller_priority) filter (where image_url is not null))[1] as hero_image_seller,
        (array_agg(description order by seller_priority) filter (where description is not null))[1] as description,
        (array_agg(seller order by seller_priority) filter (where description is not null))[1] as description_seller,
        bool_or(is_available) as has_available_seller,
        bool_or(is_preorder) as has_preorder_seller,
        min(current_price) filter (where is_available) as min_available_price,
        (
            array_agg(seller order by current_price, seller_priority)
            filter (where is_available and current_price is not null)
        )[1] as min_available_price_seller,
        min(current_price) filter (where is_preorder) as min_preorder_price,
        (
            array_agg(seller order by current_price, seller_priority)
            filter (where is_preorder and current_price is not null)
        )[1] as min_preorder_price_seller,
        count(*)::int as seller_count,
        min(min_price) as lowest_price_ever,
        (
            array_agg(lowest_price_at order by min_price, lowest_price_at)
            filter (where min_price is not null)
        )[1] as lowest_price_ever_at,
        min(first_seen_at) as first_seen_at,
        max(last_seen_at) as last_scraped_at,
        array_agg(seller order by seller_priority) as sellers
    from slug_sellers
    group by slug
),

final as (
    select
        aggregated.slug,
        slug_labels.name,
        aggregated.hero_image_url,
        aggregated.hero_image_seller,
        aggregated.description,
        aggregated.description_seller,
        case
            when aggregated.has_available_seller then aggregated.min_available_price_seller
            when aggregated.has_preorder_seller then aggregated.min_preorder_price_seller
        end as min_price_seller,
        case
            when aggregated.has_available_seller then 'available'
            when aggregated.has_preorder_seller then 'preorder'
            else 'unavailable'
        end as availability_status,
        -- stored, not an expression index: unaccent() is only STABLE, so it cannot be indexed directly
        lower(
            public.unaccent(slug_labels.name || ' ' || replace(aggregated.slug, '-', ' '))
        ) as search_text,
        aggregated.seller_count,
        (
            case
                when aggregated.has_available_seller then aggregated.min_available_price
                when aggregated.has_preorder_seller then aggregated.min_preorder_price
            end
        )::numeric(12, 2) as min_price,
        aggregated.lowest_price_ever::numeric(12, 2) as lowest_price_ever,
        aggregated.has_available_seller as is_available,
        not aggregated.has_available_seller and aggregated.has_preorder_seller as is_preorder,
        aggregated.lowest_price_ever_at,
        aggregated.first_seen_at,
        aggregated.last_scraped_at,
        slug_labels.categories,
        aggregated.sellers
    from aggregated
    inner join slug_labels on aggregated.slug = slug_labels.slug
)

select * from final
