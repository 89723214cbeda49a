-- Exact number of slugs matching the catalog filters (the same rows as catalog_page_*.sql).
-- The availability filter uses availability_status here: its btree index serves the rare
-- statuses (preorder, unavailable: a few hundred rows) with a bitmap scan, where the page
-- queries use the equivalent booleans to keep walking their sort order's index.
-- The API also runs it behind `explain (format json)` for total_estimate: the planner's row
-- estimate of the filtered scan (pg_class.reltuples x the filters' selectivity from pg_stats).
-- $1 availability ('any' | 'available' | 'preorder' | 'unavailable'), $2 min_price,
-- $3 max_price, $4 categories, $5 q_patterns, $6 q_anchor (see catalog_page_name.sql)
select count(*) as total
from catalog.catalog_slug_summary as s
where
    ($1::text = 'any' or s.availability_status = $1::text)
    and ($2::numeric is null or s.min_price >= $2::numeric)
    and ($3::numeric is null or s.min_price <= $3::numeric)
    and (cardinality($4::text[]) = 0 or s.categories @> $4::text[])
    and (cardinality($5::text[]) = 0 or s.search_text like all($5::text[]))
    and ($6::text is null or s.search_text like $6::text)
