-- Which read models the API needs are present (and readable by the API role).
select
    m.relation,
    to_regclass(m.relation) is not null as is_present
from unnest(array[
    'catalog.catalog_build_info',
    'catalog.catalog_slug_summary',
    'catalog.catalog_slug_seller_summary',
    'catalog.stg_scraper__product_price_snapshots'
]) as m (relation)
order by m.relation
