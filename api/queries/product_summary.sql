-- One product's summary by slug (unique index on slug).
-- $1 slug
select
    s.slug,
    s.name,
    s.hero_image_url,
    s.description,
    s.categories,
    s.min_price,
    s.min_price_seller,
    s.lowest_price_ever,
    s.lowest_price_ever_at,
    s.seller_count,
    s.is_available,
    s.is_preorder,
    s.first_seen_at,
    s.last_scraped_at
from catalog.catalog_slug_summary as s
where s.slug = $1::text
