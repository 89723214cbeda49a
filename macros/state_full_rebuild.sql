{#
    True when the incremental state is (re)built from the whole history in this run: on
    `--full-refresh` (`pricecat refresh --full`), and when the state table or the snapshot ledger is
    missing. int_price_snapshots_arrived and int_seller_offers_merged both ask it at compile time,
    before either changes anything, so they always agree.
#}
{% macro state_full_rebuild() -%}
    {%- if flags.FULL_REFRESH or not execute -%}
        {{ return(true) }}
    {%- endif -%}
    {%- set state_schema = generate_schema_name('state', none) | trim -%}
    {%- set ledger = adapter.get_relation(
        database=target.database, schema=state_schema, identifier='merged_snapshot_ids'
    ) -%}
    {%- set state = adapter.get_relation(
        database=target.database, schema=state_schema, identifier='int_seller_offers_merged'
    ) -%}
    {{ return(ledger is none or state is none) }}
{%- endmacro %}
