{#
    Post-hook of int_seller_offers_merged, inside the transaction of its delete+insert: records
    the ids this run merged (int_price_snapshots_arrived, quarantined rows included) and forgets
    the ids at or below the new `max(snapshot_id) - snapshot_id_overlap`, which no later run reads
    again. The same statements serve a full rebuild: every id the ledger held above the new lower
    bound is in that run's arrivals too.
#}
{% macro record_merged_snapshots() -%}
    insert into {{ snapshot_ledger() }} (snapshot_id)
    select snapshot_id from {{ ref('int_price_snapshots_arrived') }}
    on conflict (snapshot_id) do nothing;
    delete from {{ snapshot_ledger() }}
    where snapshot_id <= (
        select max(ledger.snapshot_id) - {{ var('snapshot_id_overlap') }}
        from {{ snapshot_ledger() }} as ledger
    )
{%- endmacro %}
