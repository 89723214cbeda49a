{{
    config(
        materialized='incremental',
        schema='state',
        unique_key='snapshot_id',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        pre_hook=["{{ clear_state_on_full_rebuild() }}"],
        post_hook=["{{ analyze_for_planner() }}"],
        indexes=[
            {'columns': ['snapshot_id'], 'unique': true},
        ],
    )
}}

{#
    The incremental state of the quarantined raw rows (one row per raw row, with its reason), in
    the schema `state_schema` (never swapped): catalog_quarantined_snapshots is rebuilt from it
    each run. Incrementally, the quarantined rows among this run's arrivals
    (int_price_snapshots_arrived) are written, delete+insert on snapshot_id: a row arriving again
    (a run whose ledger write failed after this model committed) replaces itself, never doubles.
    On a full rebuild (`state_full_rebuild`) every quarantined raw row is read from staging.
    Runs before int_seller_offers_merged (see its depends_on), whose post-hook records the
    arrivals in the ledger: a failure here never lets the ledger mark rows as merged that this
    state has not seen.
#}

{%- set full = not is_incremental() or state_full_rebuild() %}

-- read by the incremental branch only
-- depends_on: {{ ref('int_price_snapshots_arrived') }}

with

quarantined as (
    {% if full %}
        select
            snapshot_id,
            seller,
            slug,
            reason,
            price,
            scraped_at
        from {{ ref('stg_scraper__quarantined_snapshots') }}
    {% else %}
        select
            snapshot_id,
            seller,
            slug,
            quarantine_reason as reason,
            price,
            scraped_at
        from {{ ref('int_price_snapshots_arrived') }}
        where is_quarantined
    {% endif %}
),

final as (
    select * from quarantined
)

select * from final
