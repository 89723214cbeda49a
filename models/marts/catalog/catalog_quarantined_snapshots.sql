{#
    Raw snapshots left out of every read model, with their reason: what an analyst queries to
    see what the scraper sent wrong (docs/OPERATIONS.md). A table, so the published build keeps
    the list it was built from and the refresh flow counts it cheaply (refresh_runs.mart_rows).
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
    from {{ ref('stg_scraper__quarantined_snapshots') }}
),

final as (
    select * from quarantined
)

select * from final
