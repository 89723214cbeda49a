-- Age of the published data: the newest source snapshot of the last published refresh run, or,
-- when the marts were built without the refresh flow, the newest scrape in the summary mart.
with

last_published as (
    select
        r.source_max_scraped_at,
        r.finished_at
    from catalog_ops.refresh_runs as r
    where r.status = 'published'
    order by r.started_at desc
    limit 1
),

newest_in_marts as (
    select max(s.last_scraped_at) as last_scraped_at
    from catalog.catalog_slug_summary as s
),

final as (
    select
        coalesce(
            (select lp.source_max_scraped_at from last_published as lp),
            (select n.last_scraped_at from newest_in_marts as n)
        ) as data_as_of,
        (select lp.finished_at from last_published as lp) as published_at
)

select
    f.data_as_of,
    f.published_at,
    extract(epoch from (clock_timestamp() - f.data_as_of))::float8 as age_seconds
from final as f
