-- The published build (the data generation) and how long ago it was built.
select
    b.build_id,
    extract(epoch from (clock_timestamp() - b.built_at))::float8 as age_seconds
from catalog.catalog_build_info as b
