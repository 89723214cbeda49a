-- Exact number of slugs matching the catalog filters (same predicate as catalog_page.sql).
-- The API also runs it behind `explain (format json)` for total_estimate: the planner's row
-- estimate of the filtered scan (pg_class.reltuples x the filters' selectivity from pg_stats).
-- $1 availability, $2 min_price, $3 max_price, $4 categories, $5 q_patterns
select count(*) as total
from catalog.catalog_slug_summary as s
where
    ($1::text = 'any' or s.availability_status = $1::text)
    and ($2::numeric is null or s.min_price >= $2::numeric)
    and ($3::numeric is null or s.min_price <= $3::numeric)
    and s.categories @> $4::text[]
    and s.search_text like all($5::text[])
