-- The newest raw snapshots with the same seller's previous snapshot price for the slug.
-- The ids of the newest $1 rows come straight from the raw table (index on scraped_at desc);
-- only those rows are read through the staging view (for its availability classification):
-- `snapshot_id = any(array(...))` is pushed into the view as a primary-key lookup. A plain join
-- would not be (the view is not flattened into the query), forcing a scan of the whole view.
-- The previous price uses the index on (product_name_normalized, seller, scraped_at).
-- $1 limit
select
    r.slug,
    r.seller,
    r.price,
    previous.price as previous_price,
    r.availability_raw,
    r.is_available,
    r.is_preorder,
    r.scraped_at
from catalog.stg_scraper__product_price_snapshots as r
left join lateral (
    select p.price
    from public.product_price_snapshots as p
    where
        p.product_name_normalized = r.slug
        and p.seller = r.seller
        and p.scraped_at <= r.scraped_at
        and (p.scraped_at < r.scraped_at or p.id < r.snapshot_id)
    order by p.scraped_at desc, p.id desc
    limit 1
) as previous on true
where r.snapshot_id = any(array(
    select newest.id
    from public.product_price_snapshots as newest
    order by newest.scraped_at desc, newest.id desc
    limit $1::int
))
order by r.scraped_at desc, r.snapshot_id desc
