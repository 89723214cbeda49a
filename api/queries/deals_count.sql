-- Number of current deals matching the filters of deals_page.sql ($1..$5, same meaning).
select count(*)
from catalog.catalog_slug_seller_deals as d
where
    d.discount_percent >= $1::numeric
    and ($2::boolean is null or d.is_available = $2::boolean)
    and ($3::boolean is null or d.is_preorder = $3::boolean)
    and (cardinality($4::text[]) = 0 or d.categories @> $4::text[])
    and ($5::text is null or d.seller = $5::text)
