-- The hero image URL of one slug (unique index on slug); no row = unknown slug.
-- $1 slug
select
    s.name,
    s.hero_image_url
from catalog.catalog_slug_summary as s
where s.slug = $1::text
