-- The seller priority rule holds in the built marts (a publish-blocking invariant). Written as
-- checks, not as a second copy of the model's row_number: returns one row per violation.
--   * within a slug, seller_priority is exactly 1..n;
--   * each seller ranks before the next one (priority p vs p + 1) by the rule: sellers of the
--     seller_priority seed first in seed order, then the others by latest scraped_at desc, then
--     by seller asc;
--   * catalog_slug_summary takes name, hero image and description from the seller with the
--     lowest priority whose value is not NULL (no seller ranked before it has one; the slug
--     stands in for a missing name), and lists sellers[] in priority order.
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

ranked as (
    select
        slug_sellers.*,
        seller_priority_seed.priority as seed_priority
    from slug_sellers
    left join seller_priority_seed on slug_sellers.seller = seller_priority_seed.seller
),

contiguity_violations as (
    select
        slug,
        'seller_priority is not 1..' || count(*) as violation
    from ranked
    group by slug
    having
        min(seller_priority) <> 1
        or max(seller_priority) <> count(*)
        or count(distinct seller_priority) <> count(*)
),

order_violations as (
    select
        earlier.slug,
        'seller ' || later.seller || ' (priority ' || later.seller_priority || ') should rank before '
        || earlier.seller || ' (priority ' || earlier.seller_priority || ')' as violation
    from ranked as earlier
    inner join ranked as later
        on
            earlier.slug = later.slug
            and later.seller_priority = earlier.seller_priority + 1
    where
        (later.seed_priority is not null and earlier.seed_priority is null)
        or later.seed_priority < earlier.seed_priority
        or (
            later.seed_priority is null
            and earlier.seed_priority is null
            and (
                later.last_seen_at > earlier.last_seen_at
                or (later.last_seen_at = earlier.last_seen_at and later.seller < earlier.seller)
            )
        )
),

-- the seller each field must come from: has the value, and no seller ranked before it has one
name_sources as (
    select
        slug,
        product_name
    from ranked
    where
        product_name is not null
        and not exists (
            select 1
            from ranked as earlier_ranked
            where
                earlier_ranked.slug = ranked.slug
                and earlier_ranked.seller_priority < ranked.seller_priority
                and earlier_ranked.product_name is not null
        )
),

image_sources as (
    select
        slug,
        seller,
        image_url
    from ranked
    where
        image_url is not null
        and not exists (
            select 1
            from ranked as earlier_ranked
            where
                earlier_ranked.slug = ranked.slug
                and earlier_ranked.seller_priority < ranked.seller_priority
                and earlier_ranked.image_url is not null
        )
),

description_sources as (
    select
        slug,
        seller,
        description
    from ranked
    where
        description is not null
        and not exists (
            select 1
            from ranked as earlier_ranked
            where
                earlier_ranked.slug = ranked.slug
                and earlier_ranked.seller_priority < ranked.seller_priority
                and earlier_ranked.description is not null
        )
),

field_violations as (
    select
        slugs.slug,
        'name/hero image/description not taken from the first seller that has one' as violation
    from slugs
    left join name_sources on slugs.slug = name_sources.slug
    left join image_sources on slugs.slug = image_sources.slug
    left join description_sources on slugs.slug = description_sources.slug
    where
        slugs.name is distinct from coalesce(name_sources.product_name, slugs.slug)
        or slugs.hero_image_url is distinct from image_sources.image_url
        or slugs.hero_image_seller is distinct from image_sources.seller
        or slugs.description is distinct from description_sources.description
        or slugs.description_seller is distinct from description_sources.seller
),

sellers_violations as (
    select
        ranked.slug,
        'sellers[' || ranked.seller_priority || '] is not ' || ranked.seller as violation
    from ranked
    inner join slugs on ranked.slug = slugs.slug
    where slugs.sellers[ranked.seller_priority] is distinct from ranked.seller
)

select * from contiguity_violations
union all
select * from order_violations
union all
select * from field_violations
union all
select * from sellers_violations
