{#
    Every non-blank availability text (as trimmed by staging) that no availability_rules rule
    matches, with how many accepted snapshots carry it. Such texts are classified unavailable;
    an analyst reads this list and adds a rule (and a corpus line) for each real one. The test
    on this model only warns: an unknown text never blocks a publish.
#}
with

snapshots as (
    select
        availability_raw,
        seller,
        scraped_at
    from {{ ref('stg_scraper__product_price_snapshots') }}
    where
        availability_rule_order is null
        and availability_raw is not null
),

final as (
    select
        availability_raw,
        count(*) as snapshot_count,
        count(distinct seller) as seller_count,
        max(scraped_at) as last_seen_at
    from snapshots
    group by availability_raw
)

select * from final
