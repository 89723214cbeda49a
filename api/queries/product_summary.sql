-- One product's summary by slug, with its market lows (unique indexes on slug).
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
    s.last_scraped_at,
    m.low_30d_price,
    m.low_30d_seller,
    m.low_30d_at,
    m.low_90d_price,
    m.low_90d_seller,
    m.low_90d_at,
    m.low_365d_price,
    m.low_365d_seller,
    m.low_365d_at
from catalog.catalog_slug_summary as s
left join catalog.catalog_slug_market_lows as m on s.slug = m.slug
where s.slug = $1::text
