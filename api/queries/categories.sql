-- Every category with the number of slugs carrying it; count desc, then name in Czech order
-- (ICU `cs`: "čtyři" after "cesta", not after "z").
select
    c.category as name,
    count(*) as slug_count
from catalog.catalog_slug_summary as s
cross join lateral unnest(s.categories) as c (category)
group by c.category
order by slug_count desc, c.category collate "cs-x-icu" asc
