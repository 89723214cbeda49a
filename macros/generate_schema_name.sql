{#
    Every model, seed and view of the project lands in the target schema itself (no
    `<target>_<custom>` suffixes): the refresh flow builds one schema and swaps it in whole, so the
    staging views stay beside the tables they read and the publish is a single rename.
    The one exception is `schema='state'`: the incremental state (models/intermediate/
    int_seller_offers_merged and its snapshot ledger) lives in the schema named by the var
    `state_schema` (default `catalog_state`), which no publish ever swaps or drops.
#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name == 'state' -%}
        {{ var('state_schema', 'catalog_state') }}
    {%- else -%}
        {{ target.schema }}
    {%- endif -%}
{%- endmacro %}
