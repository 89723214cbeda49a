-- Every seller of one slug in priority order (tlamagames, tlamagase, then the others), each with
-- its own price history; the per-seller price_points arrays stay parallel for a multi-seller graph.
-- Window lows, the current reduction's prior price and discount come from
-- catalog_slug_seller_deals (unique index on slug, seller).
-- $1 slug
select
    ss.seller,
    ss.url,
    ss.product_codes,
    ss.current_price,
    ss.availability_raw,
    ss.is_available,
    ss.is_preorder,
    ss.min_price,
    ss.max_price,
    ss.last_seen_at,
    ss.price_points::text as price_points,
    d.low_30d_price,
    d.low_30d_at,
    d.low_90d_price,
    d.low_90d_at,
    d.low_365d_price,
    d.low_365d_at,
    d.prior_price,
    d.discount_percent,
    d.reduced_at,
    d.is_lowest_30d,
    d.is_lowest_90d,
    d.is_lowest_365d,
    d.is_lowest_ever
from catalog.catalog_slug_seller_summary as ss
left join catalog.catalog_slug_seller_deals as d
    on ss.slug = d.slug and ss.seller = d.seller
where ss.slug = $1::text
order by ss.seller_priority asc, ss.seller asc
