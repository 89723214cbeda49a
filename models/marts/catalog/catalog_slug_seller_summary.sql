{{
    config(
        materialized='table',
        pre_hook=["set local work_mem = '1GB'"],
        indexes=[
            {'columns': ['slug', 'seller'], 'unique': true},
            {'columns': ['seller']},
        ],
    )
}}

{#
    Two steps keep the 2M-row pass narrow:
    1. every snapshot, narrow columns only: one sort by (slug, seller, scraped_at, snapshot_id)
       serves every window function; the group by then yields per offer the prices, the
       compressed price points and the ids of the snapshots that hold the latest values;
    2. the wide texts (name, url, image, description, tags) are fetched for those few ids only.
    work_mem is raised for this model's transaction only (`set local`), so the ~300 MB sort
    stays in memory instead of spilling to disk.
#}

with

-- byte-wise ("C") keys: a 2M-row sort on them is several times faster than with the
-- linguistic default collation, and any consistent order serves the windows and group by
snapshots as (
    select
        snapshot_id,
        product_code,
        price,
        is_available,
        is_preorder,
        has_url,
        has_image_url,
        has_description,
        has_categories,
        scraped_at,
        slug collate "C" as slug,
        seller collate "C" as seller
    from {{ ref('stg_scraper__product_price_snapshots') }}
),

seller_priority_seed as (
    select
        seller,
        priority
    from {{ ref('seller_priority') }}
),

sequenced as (
    select
        *,
        row_number() over seller_history as snapshot_number,
        count(*) over seller_offer as last_snapshot_number,
        min(price) over seller_offer as seller_min_price,
        lag(price) over seller_history as previous_price,
        lag(is_available) over seller_history as previous_is_available
    from snapshots
    window
        seller_offer as (partition by slug, seller),
        seller_history as (partition by slug, seller order by scraped_at asc, snapshot_id asc)
),

-- position of the latest snapshot carrying each optional value
located as (
    select
        *,
        max(snapshot_number) filter (where price is not null) over seller_offer as price_number,
        max(snapshot_number) filter (where has_url) over seller_offer as url_number,
        max(snapshot_number) filter (where has_image_url) over seller_offer as image_url_number,
        max(snapshot_number) filter (where has_description) over seller_offer as description_number,
        max(snapshot_number) filter (where has_categories) over seller_offer as categories_number,
        -- lossless step function: the first snapshot, every change of price or availability, the latest
        (
            snapshot_number = 1
            or snapshot_number = last_snapshot_number
            or price is distinct from previous_price
            or is_available is distinct from previous_is_available
        ) as is_price_point
    from sequenced
    window seller_offer as (partition by slug, seller)
),

aggregated as (
    select
        slug,
        seller,
        max(snapshot_id) filter (where snapshot_number = last_snapshot_number) as latest_snapshot_id,
        max(snapshot_id) filter (where snapshot_number = url_number) as url_snapshot_id,
        max(snapshot_id) filter (where snapshot_number = image_url_number) as image_url_snapshot_id,
        max(snapshot_id) filter (where snapshot_number = description_number) as description_snapshot_id,
        max(snapshot_id) filter (where snapshot_number = categories_number) as categories_snapshot_id,
        max(price) filter (where snapshot_number = last_snapshot_number) as current_price,
        max(price) filter (where snapshot_number = price_number) as last_known_price,
        min(price) as min_price,
        max(price) as max_price,
        count(*) as snapshot_count,
        bool_or(is_available) filter (where snapshot_number = last_snapshot_number) as is_available,
        bool_or(is_preorder) filter (where snapshot_number = last_snapshot_number) as is_preorder,
        min(scraped_at) filter (where price = seller_min_price) as lowest_price_at,
        min(scraped_at) as first_seen_at,
        max(scraped_at) as last_seen_at,
        coalesce(
            array_agg(distinct product_code order by product_code) filter (where product_code is not null),
            '{}'
        ) as product_codes,
        jsonb_agg(
            jsonb_build_array({{ to_utc_iso8601('scraped_at') }}, price, is_available)
            order by scraped_at asc, snapshot_id asc
        ) filter (where is_price_point) as price_points
    from located
    group by slug, seller
),

-- the snapshots holding the latest values: an id list computed once, so the texts are read
-- by primary-key lookups instead of a second pass over every snapshot
picked_texts as (
    select
        snapshot_id,
        product_name,
        availability_raw,
        url,
        image_url,
        description,
        categories_raw
    from {{ ref('stg_scraper__product_price_snapshots') }}
    where
        snapshot_id = any(
            array(
                select aggregated.latest_snapshot_id from aggregated
                union all
                select aggregated.url_snapshot_id from aggregated
                union all
                select aggregated.image_url_snapshot_id from aggregated
                union all
                select aggregated.description_snapshot_id from aggregated
                union all
                select aggregated.categories_snapshot_id from aggregated
            )
        )
),

ranked as (
    select
        aggregated.*,
        row_number() over (
            partition by aggregated.slug
            order by
                seller_priority_seed.priority asc nulls last,
                aggregated.last_seen_at desc,
                aggregated.seller asc
        ) as seller_priority
    from aggregated
    left join seller_priority_seed on aggregated.seller = seller_priority_seed.seller
),

final as (
    select
        ranked.slug collate "default" as slug, -- noqa: RF02
        ranked.seller collate "default" as seller, -- noqa: RF02
        latest.product_name,
        url_source.url,
        image_url_source.image_url,
        description_source.description,
        latest.availability_raw,
        ranked.seller_priority::int as seller_priority,
        ranked.current_price::numeric(12, 2) as current_price,
        ranked.last_known_price::numeric(12, 2) as last_known_price,
        ranked.min_price::numeric(12, 2) as min_price,
        ranked.max_price::numeric(12, 2) as max_price,
        ranked.snapshot_count,
        ranked.is_available,
        ranked.is_preorder,
        ranked.lowest_price_at,
        ranked.first_seen_at,
        ranked.last_seen_at,
        ranked.product_codes,
        {{ normalize_categories('categories_source.categories_raw') }} as categories,
        ranked.price_points
    from ranked
    inner join picked_texts as latest
        on ranked.latest_snapshot_id = latest.snapshot_id
    left join picked_texts as url_source
        on ranked.url_snapshot_id = url_source.snapshot_id
    left join picked_texts as image_url_source
        on ranked.image_url_snapshot_id = image_url_source.snapshot_id
    left join picked_texts as description_source
        on ranked.description_snapshot_id = description_source.snapshot_id
    left join picked_texts as categories_source
        on ranked.categories_snapshot_id = categories_source.snapshot_id
)

select * from final
