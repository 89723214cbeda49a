-- Every seller of one slug in priority order (tlamagames, tlamagase, then the others), each with
-- its own price history; the per-seller price_points arrays stay parallel for a multi-seller graph.
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
    ss.price_points::text as price_points
from catalog.catalog_slug_seller_summary as ss
where ss.slug = $1::text
order by ss.seller_priority asc, ss.seller asc
