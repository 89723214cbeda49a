-- Every category with the number of slugs carrying it; count desc, then name.
select
    c.category as name,
    count(*) as slug_count
from catalog.catalog_slug_summary as s
cross join lateral unnest(s.categories) as c (category)
group by c.category
order by slug_count desc, name asc
