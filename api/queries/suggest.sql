-- Type-ahead suggestions: accent-insensitive; a name starting with q first, then names with a
-- word starting with q, then other substring matches, then trigram-similar names (one typo).
-- Both alternatives of the where clause can use the GIN trigram index on search_text.
-- $1 q (normalized), $2 '%q%' (LIKE-escaped), $3 'q%', $4 '% q%', $5 availability, $6 limit,
-- $7 use trigram similarity (false for q shorter than 3 characters: a one- or two-letter query has
-- no meaningful trigrams, and ranking thousands of substring matches by similarity is the slow
-- part of such a query)
select
    s.slug,
    s.name,
    s.hero_image_url,
    s.min_price,
    s.is_available,
    s.is_preorder
from catalog.catalog_slug_summary as s
where
    (s.search_text like $2::text or ($7::boolean and $1::text operator(public.<%) s.search_text))
    and ($5::text = 'any' or s.availability_status = $5::text)
order by
    case
        when s.search_text like $3::text then 0
        when ' ' || s.search_text like $4::text then 1
        when s.search_text like $2::text then 2
        else 3
    end asc,
    case when $7::boolean then public.word_similarity($1::text, s.search_text) end desc,
    s.name collate "cs-x-icu" asc,
    s.slug asc
limit $6::int
