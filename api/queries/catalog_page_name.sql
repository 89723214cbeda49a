-- One page of product cards (light: no history arrays), sort=name. One static file per sort
-- order (catalog.py maps sort -> file): a plain ORDER BY that is exactly the key of the mart's
-- index (name collate "cs-x-icu", slug), so a page is an index scan + limit that stops after
-- offset + limit matching rows instead of filtering and sorting all slugs.
-- Names sort as Czech readers expect (ICU `cs`: "Černá kočka" right after "Carcassonne",
-- "Šachy" after "Splendor"), not by code point.
-- $1 is_available wanted, $2 is_preorder wanted (boolean or null = either): the availability
--    filter as the mart's two booleans ('available' = $1 true; 'preorder' = $2 true;
--    'unavailable' = both false), same rows as availability_status (see catalog.py)
-- $3 min_price, $4 max_price (numeric or null; compared with the summary's min_price)
-- $5 categories (text[]; an item must carry all of them; '{}' = no filter)
-- $6 q_patterns (text[] of LIKE-escaped '%word%' patterns, each must match search_text)
-- $7 q_anchor: the longest word's pattern again (null without q or when every word is shorter
--    than 3 characters), a plain LIKE the trigram GIN index can serve (it can't serve like all)
-- $8 limit, $9 offset
-- Every optional filter is `(<parameter is absent> or <predicate>)`: with the parameters bound
-- (custom plans, see api/db.py plan_cache_mode) the planner folds an absent filter away, so it
-- costs nothing per row ('{}' checked per row by @> alone costs ~5 ms over all slugs).
select
    s.slug,
    s.name,
    s.hero_image_url,
    s.min_price,
    s.min_price_seller,
    s.seller_count,
    s.is_available,
    s.is_preorder,
    s.categories,
    s.last_scraped_at
from catalog.catalog_slug_summary as s
where
    ($1::boolean is null or s.is_available = $1::boolean)
    and ($2::boolean is null or s.is_preorder = $2::boolean)
    and ($3::numeric is null or s.min_price >= $3::numeric)
    and ($4::numeric is null or s.min_price <= $4::numeric)
    and (cardinality($5::text[]) = 0 or s.categories @> $5::text[])
    and (cardinality($6::text[]) = 0 or s.search_text like all($6::text[]))
    and ($7::text is null or s.search_text like $7::text)
order by s.name collate "cs-x-icu" asc, s.slug asc
limit $8::int offset $9::int
