{{
    config(
        materialized='incremental',
        schema='state',
        unique_key=['availability_raw', 'seller'],
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        pre_hook=["{{ clear_state_on_full_rebuild() }}"],
        post_hook=["{{ analyze_for_planner() }}"],
        indexes=[
            {'columns': ['availability_raw', 'seller'], 'unique': true},
        ],
    )
}}

{#
    The incremental state of the availability texts no rule matches, one row per
    (availability_raw, seller) over the accepted snapshots, in the schema `state_schema` (never
    swapped): catalog_availability_unmatched aggregates it each run (the seller count is the
    number of rows per text, which counts cannot give). Incrementally, the unmatched rows among
    this run's arrivals (int_price_snapshots_arrived) are added to their (text, seller) row:
    count summed, last_seen_at the greatest (a late row changes neither rule).

    Arrivals never hold an id the ledger holds, and the ledger is written with the offer state
    (int_seller_offers_merged's post-hook), which runs after this model (see its depends_on).
    If this model commits and the ledger write then fails, the next run brings the same rows
    again: `recent_snapshot_ids` (the ids counted in a row that are above the ledger's lower
    bound `max(ledger id) - snapshot_id_overlap`, i.e. every id that may still arrive) are
    skipped, so a row is counted once. Ids at or below the bound never arrive again and are
    dropped from the array when the row is next rewritten.
    On a full rebuild (`state_full_rebuild`) every accepted raw row is read from staging, and
    `recent_snapshot_ids` are the ids among that run's arrivals (the ids the ledger records).

    Depends on the availability_rules seed: after a rule change the state must be rebuilt; the
    refresh flow does so by itself (a changed state definition, flows/changes.py).
#}

{%- set full = not is_incremental() or state_full_rebuild() %}

with

arrived as (
    select
        snapshot_id,
        availability_raw,
        seller,
        scraped_at
    from {{ ref('int_price_snapshots_arrived') }}
    where
        not is_quarantined
        and availability_rule_order is null
        and availability_raw is not null
),

{% if full %}

    unmatched as (
        select
            snapshot_id,
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
            seller,
            count(*) as snapshot_count,
            max(scraped_at) as last_seen_at,
            coalesce(
                array_agg(snapshot_id order by snapshot_id) filter (
                    where snapshot_id in (select arrived.snapshot_id from arrived)
                ),
                '{}'
            ) as recent_snapshot_ids
        from unmatched
        group by availability_raw, seller
    )

{% else %}

    lower_bound as (
        {{ snapshot_lower_bound(false) }}
    ),

    prior as (
        select
            previous_state.availability_raw,
            previous_state.seller,
            previous_state.snapshot_count,
            previous_state.last_seen_at,
            previous_state.recent_snapshot_ids
        from {{ this }} as previous_state
        where exists (
            select from arrived
            where
                arrived.availability_raw = previous_state.availability_raw
                and arrived.seller = previous_state.seller
        )
    ),

    -- arrivals not counted yet (a row counted by a run whose ledger write failed is skipped)
    batch as (
        select
            arrived.availability_raw,
            arrived.seller,
            count(*) as snapshot_count,
            max(arrived.scraped_at) as last_seen_at,
            array_agg(arrived.snapshot_id) as snapshot_ids
        from arrived
        left join prior
            on
                arrived.availability_raw = prior.availability_raw
                and arrived.seller = prior.seller
        where not coalesce(arrived.snapshot_id = any(prior.recent_snapshot_ids), false)
        group by arrived.availability_raw, arrived.seller
    ),

    final as (
        select
            batch.availability_raw,
            batch.seller,
            batch.snapshot_count + coalesce(prior.snapshot_count, 0) as snapshot_count,
            greatest(batch.last_seen_at, prior.last_seen_at) as last_seen_at,
            array(
                select recent.snapshot_id
                from unnest(coalesce(prior.recent_snapshot_ids, '{}') || batch.snapshot_ids)
                    as recent (snapshot_id)
                where recent.snapshot_id > (select lower_bound.snapshot_id from lower_bound)
                order by recent.snapshot_id
            ) as recent_snapshot_ids
        from batch
        left join prior
            on
                batch.availability_raw = prior.availability_raw
                and batch.seller = prior.seller
    )

{% endif %}

select * from final
