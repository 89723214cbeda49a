{#
    Every non-blank availability text (as trimmed by staging) that no availability_rules rule
    matches, with how many accepted snapshots carry it. Such texts are classified unavailable;
    an analyst reads this list and adds a rule (and a corpus line) for each real one. The test
    on this model only warns: an unknown text never blocks a publish.
    Aggregated from the incremental state int_availability_unmatched_merged (catalog_state, one
    row per text and seller), which takes in only each run's arrivals: the raw table is not
    scanned.
#}
with

texts as (
    select
        availability_raw,
        seller,
        snapshot_count,
        last_seen_at
    from {{ ref('int_availability_unmatched_merged') }}
),

final as (
    select
        availability_raw,
        sum(snapshot_count)::bigint as snapshot_count,
        count(*) as seller_count,
        max(last_seen_at) as last_seen_at
    from texts
    group by availability_raw
)

select * from final
