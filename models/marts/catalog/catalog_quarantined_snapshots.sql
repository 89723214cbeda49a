{#
    Raw snapshots left out of every read model, with their reason: what an analyst queries to
    see what the scraper sent wrong (docs/OPERATIONS.md). A table, so the published build keeps
    the list it was built from and the refresh flow counts it cheaply (refresh_runs.mart_rows).
    Copied from the incremental state int_quarantined_snapshots_merged (catalog_state), which
    takes in only each run's arrivals: the raw table is not scanned.
#}
with

quarantined as (
    select
        snapshot_id,
        seller,
        slug,
        reason,
        price,
        scraped_at
    from {{ ref('int_quarantined_snapshots_merged') }}
),

final as (
    select * from quarantined
)

select * from final
