-- The seller priority rule holds in the built marts. Returns one row per violation:
--   * seller_priority is 1..n within a slug, seed sellers first in seed order (tlamagames 1,
--     tlamagase next), the others by latest scraped_at desc, then seller asc;
--   * catalog_slug_summary takes name from the priority-1 seller, and hero image / description
--     from the first seller in priority order that has one; sellers[] is in priority order.
with

slug_sellers as (
    select
        slug,
        seller,
        seller_priority,
        product_name,
        image_url,
        description,
        last_seen_at
    from {{ ref('catalog_slug_seller_summary') }}
),

seller_priority_seed as (
    select
        seller,
        priority
    from {{ ref('seller_priority') }}
),

slugs as (
    select
        slug,
        name,
        hero_image_url,
        hero_image_seller,
        description,
        description_seller,
        sellers
    from {{ ref('catalog_slug_summary') }}
),

expected_ranks as (
    select
        slug_sellers.slug,
        slug_sellers.seller,
        slug_sellers.seller_priority,
        row_number() over (
            partition by slug_sellers.slug
            order by
                seller_priority_seed.priority asc nulls last,
                slug_sellers.last_seen_at desc,
                slug_sellers.seller asc
        ) as expected_priority
    from slug_sellers
    left join seller_priority_seed on slug_sellers.seller = seller_priority_seed.seller
),

rank_violations as (
    select
        slug,
        'seller ' || seller || ' has priority ' || seller_priority || ', expected ' || expected_priority as violation
    from expected_ranks
    where seller_priority is distinct from expected_priority
),

expected_fields as (
    select
        slug,
        (array_agg(product_name order by seller_priority))[1] as name,
        (array_agg(seller order by seller_priority) filter (where image_url is not null))[1] as hero_image_seller,
        (array_agg(image_url order by seller_priority) filter (where image_url is not null))[1] as hero_image_url,
        (array_agg(seller order by seller_priority) filter (where description is not null))[1] as description_seller,
        (array_agg(description order by seller_priority) filter (where description is not null))[1] as description,
        array_agg(seller order by seller_priority) as sellers
    from slug_sellers
    group by slug
),

field_violations as (
    select
        slugs.slug,
        'name/hero/description/sellers not taken by priority' as violation
    from slugs
    inner join expected_fields on slugs.slug = expected_fields.slug
    where
        slugs.name is distinct from expected_fields.name
        or slugs.hero_image_url is distinct from expected_fields.hero_image_url
        or slugs.hero_image_seller is distinct from expected_fields.hero_image_seller
        or slugs.description is distinct from expected_fields.description
        or slugs.description_seller is distinct from expected_fields.description_seller
        or slugs.sellers is distinct from expected_fields.sellers
),

tlamagames_violations as (
    -- spelled out for the two named sellers while the seed ranks them 1 and 2
    select
        slug,
        'tlamagames/tlamagase are not first' as violation
    from slugs
    where
        (
            select count(*)
            from seller_priority_seed
            where
                (seller_priority_seed.seller, seller_priority_seed.priority)
                in (('tlamagames', 1), ('tlamagase', 2))
        ) = 2
        and (
            ('tlamagames' = any(sellers) and sellers[1] <> 'tlamagames')
            or (
                'tlamagase' = any(sellers)
                and array_position(sellers, 'tlamagase')
                <> case when 'tlamagames' = any(sellers) then 2 else 1 end
            )
        )
)

select * from rank_violations
union all
select * from field_violations
union all
select * from tlamagames_violations
