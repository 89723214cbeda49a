-- One page of current deals (catalog_slug_seller_deals rows with a discount), ordered by
-- discount_percent desc, slug, seller: exactly the mart's index key, so a page is an index scan
-- from the highest discount down to min_discount that stops after offset + limit rows.
-- $1 min_discount (numeric; discount_percent >= it, and a row without a discount never matches)
-- $2 is_available wanted, $3 is_preorder wanted (boolean or null = either)
-- $4 categories (text[]; the product must carry all of them; '{}' = no filter)
-- $5 seller (text or null), $6 limit, $7 offset
select
    d.slug,
    d.name,
    d.seller,
    d.price,
    d.prior_price,
    d.discount_percent,
    d.reduced_at,
    d.is_available,
    d.is_preorder,
    d.is_lowest_30d,
    d.is_lowest_90d,
    d.is_lowest_365d,
    d.is_lowest_ever
from catalog.catalog_slug_seller_deals as d
where
    d.discount_percent >= $1::numeric
    and ($2::boolean is null or d.is_available = $2::boolean)
    and ($3::boolean is null or d.is_preorder = $3::boolean)
    and (cardinality($4::text[]) = 0 or d.categories @> $4::text[])
    and ($5::text is null or d.seller = $5::text)
order by d.discount_percent desc, d.slug asc, d.seller asc
limit $6::int offset $7::int
