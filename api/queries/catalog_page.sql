-- One page of product cards (light: no history arrays).
-- $1 availability ('any' | 'available' | 'preorder' | 'unavailable')
-- $2 min_price, $3 max_price (numeric or null; compared with the summary's min_price)
-- $4 categories (text[]; an item must carry all of them; '{}' = no filter)
-- $5 q_patterns (text[] of LIKE-escaped '%word%' patterns, each must match search_text)
-- $6 q (normalized query text or null), $7 q prefix pattern ('q%'), $8 word-prefix ('% q%')
-- $9 sort ('name' | 'price_asc' | 'price_desc' | 'newest' | 'relevance'); ties -> slug
-- $10 limit, $11 offset
select
    s.slug,
    s.name,
    s.hero_image_url,
    s.min_price,
    s.min_price_seller,
    s.seller_count,
    s.is_available,
    s.is_preorder,
    s.categories,
    s.last_scraped_at
from catalog.catalog_slug_summary as s
where
    ($1::text = 'any' or s.availability_status = $1::text)
    and ($2::numeric is null or s.min_price >= $2::numeric)
    and ($3::numeric is null or s.min_price <= $3::numeric)
    and s.categories @> $4::text[]
    and s.search_text like all($5::text[])
order by
    case when $9::text = 'relevance' then
        case
            when s.search_text like $7::text then 0
            when ' ' || s.search_text like $8::text then 1
            else 2
        end
    end asc,
    case
        when $9::text = 'relevance' then public.word_similarity($6::text, s.search_text)
    end desc,
    case when $9::text = 'price_asc' then s.min_price end asc nulls last,
    case when $9::text = 'price_desc' then s.min_price end desc nulls last,
    case when $9::text = 'newest' then s.first_seen_at end desc nulls last,
    case when $9::text in ('name', 'relevance') then s.name end asc,
    s.slug asc
limit $10::int offset $11::int
