-- Catalog-card badges of up to 100 slugs (unique index on slug): whether the cheapest offered
-- price is the market's lowest of 30/90/365 days (catalog_slug_market_lows).
-- $1 slugs (text[])
select
    m.slug,
    m.is_lowest_30d,
    m.is_lowest_90d,
    m.is_lowest_365d
from catalog.catalog_slug_market_lows as m
where m.slug = any($1::text[])
order by m.slug asc
