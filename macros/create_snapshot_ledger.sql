{#
    Pre-hook of int_seller_offers_merged: creates the snapshot ledger (`snapshot_ledger`) when it
    is missing. A plain table, not a model: it is written in the same transaction as the state by
    `record_merged_snapshots`, so the state and the ledger never disagree.
#}
{% macro create_snapshot_ledger() -%}
    create schema if not exists {{ adapter.quote(generate_schema_name('state', none) | trim) }};
    create table if not exists {{ snapshot_ledger() }} (
        snapshot_id bigint primary key,
        merged_at timestamptz not null default now()
    )
{%- endmacro %}
